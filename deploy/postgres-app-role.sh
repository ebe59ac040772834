#!/bin/sh
# Run once by the postgres image when its data folder is created (docker-entrypoint-initdb.d).
# The Streamlit app faces users, so it connects as quorum_app: read and write rows, nothing
# else (no DDL, no ownership). Migrations and the workers (which build vector indexes, DDL)
# use the owner role POSTGRES_USER.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$QUORUM_APP_DB_PASSWORD" -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE quorum_app LOGIN PASSWORD :'app_password';
GRANT CONNECT ON DATABASE :"db" TO quorum_app;
GRANT USAGE ON SCHEMA public TO quorum_app;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO quorum_app;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO quorum_app;
SQL
