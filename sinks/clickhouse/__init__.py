"""The analytics schema in ClickHouse: versioned migrations and the operations on it."""
