"""The SQLite store: connection, schema, state blobs, the lease, store errors."""
