// Runs graphql-http's auditServer against a live gql_chat and prints the results as JSON.
// Every request carries Apollo-Require-Preflight: gql_chat's CSRF rule refuses preflight-free
// GETs and simple-content-type POSTs, which is what browsers' cross-site requests look like.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  headers.set('apollo-require-preflight', '1');
  return fetch(input, { ...init, headers });
};
const results = await auditServer({ url, fetchFn });
console.log(JSON.stringify(results.map((r) => ({ id: r.id, name: r.name, status: r.status, reason: r.reason ?? null }))));
