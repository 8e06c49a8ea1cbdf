// The public API, and only it: every request has a deadline, errors name a field.
"use strict";

const BASE = "/api/v1";
export const TIMEOUTS = { status: 1500, read: 8000, change: 120000 };  // milliseconds
let token = sessionStorage.getItem("ipkeeper-token") || "";
let onMissingToken = () => {};

export class ApiError extends Error {
  // code: the HTTP status, or 0 when the server did not answer at all.
  constructor(field, reason, code) { super(`${field}: ${reason}`); this.field = field; this.reason = reason; this.code = code; }
}

export function setToken(value) {
  token = value;
  sessionStorage.setItem("ipkeeper-token", token);
}

export function whenTokenMissing(callback) { onMissingToken = callback; }

export async function api(method, path, body, timeout) {
  const headers = { "Accept": "application/json" };
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const limit = timeout || (method === "GET" ? TIMEOUTS.read : TIMEOUTS.change);
  let response;
  try {
    response = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(limit) });
  } catch (error) {
    const reason = error.name === "TimeoutError" ? `no answer within ${limit / 1000} s` : `no answer (${error.message})`;
    throw new ApiError("server", reason, 0);
  }
  // Read every answer's body, a refusal's too: a body left unread keeps its connection busy.
  let text;
  try {
    text = await response.text();
  } catch (error) {
    throw new ApiError("server", `the answer was cut short (${error.message})`, 0);
  }
  if (response.status === 401) { onMissingToken(); throw new ApiError("authorization", "the API token is missing or wrong", 401); }
  let data = {};
  try {
    if (text && response.headers.get("content-type")?.includes("json")) data = JSON.parse(text);
  } catch (error) {
    throw new ApiError("server", `the answer was cut short (${error.message})`, 0);
  }
  if (!response.ok) {
    const error = data.error || { field: "request", reason: `HTTP ${response.status}` };
    throw new ApiError(error.field, error.reason, response.status);
  }
  return data;
}

// A query string from the parameters that have a value (arrays repeat the key).
export function q(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) if (item !== "" && item != null) search.append(key, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
