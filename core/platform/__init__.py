"""Platform: settings, the database and its schema, embedded services, queue, storage, errors, the job lifecycle."""
