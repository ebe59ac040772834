"""The one place that talks to AI APIs. Import the provider with get_provider()."""
