"""PostgreSQL: connection handling and versioned migrations. Repositories live with their domain."""
