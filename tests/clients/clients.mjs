// Apollo Client 4 (HttpLink + GraphQLWsLink), urql 6 (its default exchanges, which send queries
// as GET, plus subscriptionExchange) and graphql-ws, each with its default settings, against a
// live gql_chat: sign up, list conversations, send a message and follow the reply to `done`.
// Usage: node clients.mjs <http url of /graphql>. Prints one JSON line per client.
import { ApolloClient, HttpLink, InMemoryCache, split, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { Client as UrqlClient, cacheExchange, fetchExchange, subscriptionExchange } from "@urql/core";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const httpUrl = process.argv[2];
const wsUrl = httpUrl.replace(/^http/, "ws");
const TIMEOUT_MS = 20000;

const REGISTER = `mutation Register($input: RegisterInput!) {
  register(input: $input) { accessToken user { id email } } }`;
const CONVERSATIONS = `query Conversations { conversations(first: 10) {
  totalCount edges { node { id title } } } }`;
const SEND = `mutation Send($input: SendMessageInput!) { sendMessage(input: $input) {
  conversation { id } assistantMessage { id status } } }`;
const STREAM = `subscription Stream($id: ID!) { messageStream(messageId: $id) {
  seq delta status done message { id content status } } }`;

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function email(name) {
  return `${name}-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`;
}

async function register(name) {
  // A plain fetch, like a sign-up form: the clients below start signed in.
  const response = await fetch(httpUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: REGISTER,
      variables: { input: { email: email(name), password: "correct horse battery" } },
    }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data.register.accessToken;
}

function collect(subscribeTo, what) {
  // Resolves with every event's delta joined, once an event says `done`.
  return within(
    new Promise((resolve, reject) => {
      const deltas = [];
      const stop = subscribeTo({
        next: (result) => {
          if (result.errors && result.errors.length) {
            reject(new Error(JSON.stringify(result.errors)));
            return;
          }
          const event = result.data.messageStream;
          deltas.push(event.delta);
          if (event.done) {
            stop();
            resolve({ text: deltas.join(""), final: event.message });
          }
        },
        error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))),
      });
    }),
    what,
  );
}

async function apollo() {
  const token = await register("apollo");
  const headers = { Authorization: `Bearer ${token}` };
  const wsClient = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: () => headers,
  });
  const link = split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    new GraphQLWsLink(wsClient),
    new HttpLink({ uri: httpUrl, headers }),
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  try {
    const listed = await within(client.query({ query: gql(CONVERSATIONS) }), "apollo query");
    const sent = await within(
      client.mutate({ mutation: gql(SEND), variables: { input: { content: "Hello from Apollo" } } }),
      "apollo mutation",
    );
    const reply = await collect((observer) => {
      const subscription = client
        .subscribe({ query: gql(STREAM), variables: { id: sent.data.sendMessage.assistantMessage.id } })
        .subscribe(observer);
      return () => subscription.unsubscribe();
    }, "apollo subscription");
    return { listed: listed.data.conversations.totalCount, ...reply };
  } finally {
    client.stop();
    await wsClient.dispose();
  }
}

async function urql() {
  const token = await register("urql");
  const headers = { Authorization: `Bearer ${token}` };
  const wsClient = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: () => headers });
  const client = new UrqlClient({
    url: httpUrl,
    fetchOptions: () => ({ headers }),
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              return { unsubscribe: wsClient.subscribe(input, sink) };
            },
          };
        },
      }),
    ],
  });
  try {
    const listed = await within(client.query(CONVERSATIONS, {}).toPromise(), "urql query");
    if (listed.error) throw listed.error;
    const sent = await within(
      client.mutation(SEND, { input: { content: "Hello from urql" } }).toPromise(),
      "urql mutation",
    );
    if (sent.error) throw sent.error;
    const reply = await collect((observer) => {
      const { unsubscribe } = client
        .subscription(STREAM, { id: sent.data.sendMessage.assistantMessage.id })
        .subscribe((result) => (result.error ? observer.error(result.error) : observer.next(result)));
      return unsubscribe;
    }, "urql subscription");
    return { listed: listed.data.conversations.totalCount, ...reply };
  } finally {
    await wsClient.dispose();
  }
}

async function graphqlWs() {
  const token = await register("graphql-ws");
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
  });
  const once = (query, variables) =>
    within(
      new Promise((resolve, reject) => {
        let result;
        client.subscribe({ query, variables }, {
          next: (value) => (result = value),
          error: reject,
          complete: () => (result.errors ? reject(new Error(JSON.stringify(result.errors))) : resolve(result)),
        });
      }),
      "graphql-ws operation",
    );
  try {
    const listed = await once(CONVERSATIONS, {});
    const sent = await once(SEND, { input: { content: "Hello from graphql-ws" } });
    const reply = await collect(
      (observer) => client.subscribe(
        { query: STREAM, variables: { id: sent.data.sendMessage.assistantMessage.id } },
        { next: observer.next, error: observer.error, complete: () => {} },
      ),
      "graphql-ws subscription",
    );
    return { listed: listed.data.conversations.totalCount, ...reply };
  } finally {
    await client.dispose();
  }
}

let failed = false;
for (const [name, run] of [["apollo", apollo], ["urql", urql], ["graphql-ws", graphqlWs]]) {
  try {
    console.log(JSON.stringify({ client: name, ok: true, ...(await run()) }));
  } catch (error) {
    failed = true;
    console.log(JSON.stringify({ client: name, ok: false, error: String(error && error.stack || error) }));
  }
}
process.exit(failed ? 1 : 0);
