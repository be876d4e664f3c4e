import { request } from 'node:https';
import { fail } from '../shared/errors.js';

/** Options of {@link callHubApi}. */
export interface HubApiCall {
  /** Base URL of the hub's HTTPS API, e.g. https://127.0.0.1:8443. */
  baseUrl: string;
  /** CA certificate (PEM) that signed the hub's certificate. */
  caPem: string;
  token: string;
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  /** Request time limit; default 10 minutes, as publishing trains a teacher first. */
  timeoutMs?: number;
}

/** A JSON response of the hub's API. */
export interface HubApiResponse<T = unknown> {
  status: number;
  body: T;
}

/**
 * Calls the hub's operator/auditor API over HTTPS, checking the hub's certificate against
 * the consortium CA. Node's fetch cannot take a CA without a separate dispatcher, so this
 * uses node:https directly.
 */
export function callHubApi<T = unknown>(call: HubApiCall): Promise<HubApiResponse<T>> {
  return callHubApiText(call).then(({ status, text }) => {
    try {
      return { status, body: (text ? JSON.parse(text) : null) as T };
    } catch (err) {
      throw fail(
        'REQUEST_INVALID',
        { detail: `hub answered non-JSON: ${text.slice(0, 200)}` },
        { cause: err },
      );
    }
  });
}

/** Like {@link callHubApi}, for answers that are not one JSON document (NDJSON exports). */
export function callHubApiText(call: HubApiCall): Promise<{ status: number; text: string }> {
  const url = new URL(call.path, call.baseUrl);
  const payload = call.body === undefined ? undefined : JSON.stringify(call.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: call.method,
        ca: call.caPem,
        timeout: call.timeoutMs ?? 600_000,
        headers: {
          authorization: `Bearer ${call.token}`,
          accept: 'application/json, application/x-ndjson',
          ...(payload ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} in time`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Throws the hub's own error message when a call did not succeed. */
export function expectOk<T>(response: HubApiResponse<T>, what: string): T {
  if (response.status >= 200 && response.status < 300) return response.body;
  const message = (response.body as { error?: { message?: string } } | null)?.error?.message;
  throw new Error(`${what} failed with HTTP ${response.status}: ${message ?? 'no detail'}`);
}
