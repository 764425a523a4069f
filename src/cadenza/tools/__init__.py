"""Tools: typed Python functions, MCP servers, side-effect records, permissions and the shared workspace."""
