package proxy

// ServerStatementName is how the proxy names a statement on the server.
var ServerStatementName = serverStatementName
