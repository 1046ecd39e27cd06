// The gql_chat explorer page's script (served inline with a CSP nonce by graphiql.py).
const config = JSON.parse(document.getElementById("gql-chat-config").textContent);
// The explorer's libraries come from GQL_CHAT_GRAPHIQL_ASSETS_URL. When they cannot be loaded
// (no internet, a blocked CDN), say so instead of "Loading…" for ever.
const missing = ["React", "ReactDOM", "GraphiQL", "graphqlWs"].filter((name) => !(name in window));
if (missing.length) {
  document.getElementById("graphiql").textContent =
    `The explorer could not load its scripts (${missing.join(", ")}) from ${config.assetsUrl}. ` +
    "Without internet access, serve the npm packages yourself and point " +
    "GQL_CHAT_GRAPHIQL_ASSETS_URL at them (see the README, \"The GraphiQL explorer\"); " +
    `any GraphQL client can still use ${config.path}.`;
  throw new Error("GraphiQL assets not loaded: " + missing.join(", "));
}
const wsUrl = new URL(config.path, window.location.href);
wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";
const httpFetcher = GraphiQL.createFetcher({ url: config.path });
let socket = null;
let socketAuthorization = null;

function authorizationOf(headers) {
  const value = headers && (headers.Authorization || headers.authorization);
  if (typeof value !== "string") return null;
  const trimmed = value.trim();
  return trimmed === "" || trimmed === "Bearer" ? null : trimmed;
}

function socketFor(authorization) {
  if (socket && socketAuthorization === authorization) return socket;
  if (socket) socket.dispose();
  socketAuthorization = authorization;
  socket = graphqlWs.createClient({
    url: wsUrl.toString(),
    lazy: true,
    connectionParams: authorization ? { Authorization: authorization } : {},
  });
  return socket;
}

function isSubscription(params, options) {
  const document = options && options.documentAST;
  if (!document) return /^\s*subscription\b/m.test(params.query || "");
  const operations = document.definitions.filter((d) => d.kind === "OperationDefinition");
  const chosen = params.operationName
    ? operations.find((o) => o.name && o.name.value === params.operationName)
    : operations[0];
  return Boolean(chosen && chosen.operation === "subscription");
}

function asError(error) {
  if (error instanceof Error) return error;
  if (error && error.code) return new Error(`websocket closed: ${error.code} ${error.reason || ""}`);
  return new Error(String(error));
}

function fetcher(params, options) {
  if (!isSubscription(params, options)) return httpFetcher(params, options);
  const client = socketFor(authorizationOf(options && options.headers));
  return {
    subscribe(observer) {
      const stop = client.subscribe(params, {
        next: (value) => observer.next(value),
        error: (error) => observer.error(asError(error)),
        complete: () => observer.complete(),
      });
      return { unsubscribe: stop };
    },
  };
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: config.query,
    defaultVariables: config.variables,
    defaultHeaders: config.headers,
    defaultEditorToolsVisibility: "headers",
    isHeadersEditorEnabled: true,
  }),
);
