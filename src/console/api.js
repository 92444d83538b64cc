// @ts-check
// The admin API (/api/v1) as one typed function per call the console makes. Each sends the operator token
// of this tab's session (or the token being tried, when signing in) to this gateway only; an answer that
// says the session's token is no longer valid (401) signs the operator out.
/**
 * @import { AuditEntry, Client, CreatedClient, CreatedKey, Decision, DecisionResult, Device, DeviceDetail,
 *   DeviceQuery, FilterDecided, FilterDryRun, Key, KeyUsage, Me, Meta, RotatedKey, DeviceInventory, DeviceChanges,
 *   SecurityEvent, Policies, PolicyAdded, PolicyRule, PolicyTest, OutboxItem, Operator, CreatedOperator } from './types.js'
 */
import { getSession } from './session.js';

export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status (0: the gateway could not be reached)
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
    /** True once this answer has signed the operator out (the page is then replaced by the sign-in form). */
    this.signedOut = false;
  }
}

/** @param {unknown} err */
export function isSignedOut(err) {
  return err instanceof ApiError && err.signedOut;
}

/** @type {(message: string) => void} */
let signOutHandler = () => {};

/**
 * What to do when the session's token stops working (set once, by the entry module).
 * @param {(message: string) => void} fn
 */
export function onSignedOut(fn) {
  signOutHandler = fn;
}

/**
 * `?k=v&…` from the values that are set (undefined, null and '' are left out).
 * @param {Record<string, string | number | null | undefined>} o
 */
export function qs(o) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/**
 * One call; the answer's JSON is typed by the caller's declared return type (the API's shapes in types.js).
 * @template T
 * @param {'GET' | 'POST'} method
 * @param {string} path under /api/v1
 * @param {unknown} [body]
 * @param {string} [token] a token being tried (sign-in); without it, the session's
 * @returns {Promise<T>}
 */
async function call(method, path, body, token) {
  const s = getSession();
  const bearer = token ?? s?.token;
  if (!bearer) throw new ApiError(401, 'Not signed in');
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json', Authorization: `Bearer ${bearer}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch (err) {
    throw new ApiError(0, `Cannot reach the gateway: ${err instanceof Error ? err.message : String(err)}`);
  }
  const raw = await res.text();
  /** @type {unknown} */
  let data = null;
  try {
    data = raw ? JSON.parse(raw) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const message =
      data && typeof data === 'object' && 'message' in data && typeof data.message === 'string'
        ? data.message
        : `${res.status} ${res.statusText || 'error'}`;
    const err = new ApiError(res.status, message);
    if (res.status === 401 && token === undefined && s) {
      signOutHandler(`You were signed out: ${message}. The token is no longer valid.`);
      err.signedOut = true;
    }
    throw err;
  }
  if (raw && data === null) throw new ApiError(res.status, 'The gateway did not answer with JSON');
  return /** @type {T} */ (data);
}

const enc = encodeURIComponent;

// ---- who, and what the server knows (with the token being tried) ----------------------------------------

/**
 * @param {string} token
 * @returns {Promise<Me>}
 */
export const getMe = (token) => call('GET', '/me', undefined, token);

/**
 * @param {string} token
 * @returns {Promise<Meta>}
 */
export const getMeta = (token) => call('GET', '/meta', undefined, token);

/**
 * This gateway process's local spool (null without one).
 * @returns {Promise<{ spool: { messages: number, bytes: number, oldest: string | null, replaying: boolean } | null }>}
 */
export const getStatus = () => call('GET', '/status');

// ---- devices ----------------------------------------------------------------------------------------------

/**
 * @param {DeviceQuery} query
 * @returns {Promise<Device[]>}
 */
export const listDevices = (query) => call('GET', `/devices${qs({ ...query })}`);

/**
 * How a device is named in paths, as in the CLI: `id:15` is row 15, anything else a deviceid (so a device
 * whose deviceid is "15" is never mistaken for row 15).
 * @param {number} id
 */
export const rowRef = (id) => `id:${id}`;
/** A reference to a device by its deviceid, explicit (a deviceid may itself look like `id:5`). */
export const deviceRef = (/** @type {string} */ deviceid) => `deviceid:${deviceid}`;

/**
 * @param {string} ref a deviceid, or `id:N` for row N (what the console's own links carry)
 * @returns {Promise<DeviceDetail>}
 */
export const getDevice = (ref) => call('GET', `/devices/${enc(ref)}`);

/**
 * @param {Decision} decision
 * @param {{ ids: (string | number)[], reason?: string }} what ids: row ids as numbers, deviceids as strings
 * @returns {Promise<{ results: DecisionResult[] }>}
 */
export const decide = (decision, what) => call('POST', `/devices/${decision}`, what);

/**
 * A filter decision's dry run: what it would decide.
 * @param {Decision} decision
 * @param {string} filter
 * @returns {Promise<FilterDryRun>}
 */
export const previewFilter = (decision, filter) => call('POST', `/devices/${decision}`, { filter });

/**
 * A filter decision, confirmed with the count its dry run showed.
 * @param {Decision} decision
 * @param {{ filter: string, confirmCount: number, reason?: string }} what
 * @returns {Promise<FilterDecided>}
 */
export const decideFilter = (decision, what) => call('POST', `/devices/${decision}`, what);

/**
 * @param {number} id
 * @returns {Promise<DecisionResult | null>}
 */
export const undoDecision = (id) => call('POST', `/devices/${enc(rowRef(id))}/undo`);

/**
 * Pins a device to another credential (audited).
 * @param {number} id
 * @param {{ key?: string, client?: string, reason?: string }} to
 * @returns {Promise<{ id: number, deviceid: string, key: string | null, clientId: string | null }>}
 */
export const rebindDevice = (id, to) => call('POST', `/devices/${enc(rowRef(id))}/rebind`, to);

/**
 * The inventory itself, as sections.
 * @param {string | number} ref
 * @returns {Promise<DeviceInventory>}
 */
export const getInventory = (ref) => call('GET', `/devices/${enc(ref)}/inventory`);

/**
 * What changed between the latest full inventory and the one before it (or the reference, in conflict).
 * @param {string | number} ref
 * @returns {Promise<DeviceChanges>}
 */
export const getChanges = (ref) => call('GET', `/devices/${enc(ref)}/changes`);

// ---- registration keys ------------------------------------------------------------------------------------

/** @returns {Promise<Key[]>} */
export const listKeys = () => call('GET', '/keys');

/**
 * @param {{ name: string, tag?: string, maxDevices: number, expiresAt?: string, comment?: string }} input
 * @returns {Promise<CreatedKey>}
 */
export const createKey = (input) => call('POST', '/keys', input);

/**
 * @param {string} name
 * @param {string} grace e.g. 7d, 12h, 0
 * @returns {Promise<RotatedKey>}
 */
export const rotateKey = (name, grace) => call('POST', `/keys/${enc(name)}/rotate`, { grace });

/**
 * @param {string} name
 * @param {boolean} active
 * @returns {Promise<Key>}
 */
export const setKeyActive = (name, active) => call('POST', `/keys/${enc(name)}/${active ? 'activate' : 'revoke'}`);

/**
 * A key's usage, page after page (the API pages it), up to USAGE_MAX_PAGES pages of 1000 rows;
 * `nextCursor` is set when there was more than that.
 * @param {string} name
 * @returns {Promise<KeyUsage>}
 */
export async function keyUsage(name) {
  /** @type {KeyUsage} */
  const first = await call('GET', `/keys/${enc(name)}/usage?limit=1000`);
  const usage = [...first.usage];
  let next = first.nextCursor;
  for (let page = 1; next && page < USAGE_MAX_PAGES; page++) {
    /** @type {KeyUsage} */
    const more = await call('GET', `/keys/${enc(name)}/usage?limit=1000&cursor=${encodeURIComponent(next)}`);
    usage.push(...more.usage);
    next = more.nextCursor;
  }
  return { ...first, usage, nextCursor: next };
}
const USAGE_MAX_PAGES = 10;

// ---- clients ------------------------------------------------------------------------------------------------

/** @returns {Promise<Client[]>} */
export const listClients = () => call('GET', '/clients');

/**
 * @param {{ name: string, device?: string, comment?: string }} input
 * @returns {Promise<CreatedClient>}
 */
export const createClient = (input) => call('POST', '/clients', input);

/**
 * @param {string} clientId
 * @returns {Promise<Client>}
 */
export const revokeClient = (clientId) => call('POST', `/clients/${enc(clientId)}/revoke`);

// ---- audit log ----------------------------------------------------------------------------------------------

/**
 * @param {{ action?: string, actor?: string, since?: string, until?: string, before?: number, limit?: number }} query
 * @returns {Promise<AuditEntry[]>}
 */
export const listAudit = (query) => call('GET', `/audit${qs(query)}`);

// ---- security events ----------------------------------------------------------------------------------------

/**
 * @param {{ type?: string, address?: string, key?: string, since?: string, until?: string, before?: number, limit?: number }} query
 * @returns {Promise<SecurityEvent[]>}
 */
export const listSecurityEvents = (query) => call('GET', `/security-events${qs(query)}`);

// ---- auto-approval policies ---------------------------------------------------------------------------------

/** @returns {Promise<Policies>} */
export const listPolicies = () => call('GET', '/policies');

/**
 * A rule the policies page builds: what it does, what it matches, why.
 * @typedef {{ action: 'approve' | 'quarantine' | 'reject', match: Record<string, string>, comment?: string }} ProposedRule
 */

/**
 * Saves a rule (at `position`, or last); the rules are applied to the quarantine queue at once.
 * @param {ProposedRule & { position?: number }} rule
 * @returns {Promise<PolicyAdded>}
 */
export const addPolicy = (rule) => call('POST', '/policies', rule);

/**
 * The dry run: what these rules (or, without them, the saved ones) would decide; nothing is saved.
 * @param {{ rules?: ProposedRule[], days?: number }} what
 * @returns {Promise<PolicyTest>}
 */
export const testPolicies = (what) => call('POST', '/policies/test', what);

/**
 * @param {number} id
 * @returns {Promise<PolicyRule>}
 */
export const removePolicy = (id) => call('POST', `/policies/${id}/remove`);

// ---- forwarding outbox --------------------------------------------------------------------------------------

/**
 * @param {{ state?: string, deviceid?: string, limit?: number }} query
 * @returns {Promise<OutboxItem[]>}
 */
export const listOutbox = (query) => call('GET', `/outbox${qs(query)}`);

/**
 * A dead (or waiting) item is due again now, with fresh attempts (audited).
 * @param {number} id
 * @returns {Promise<OutboxItem>}
 */
export const retryOutbox = (id) => call('POST', `/outbox/${id}/retry`);

/**
 * A dead (or waiting) item is removed: it will not be sent; the submission stays (audited).
 * @param {number} id
 * @returns {Promise<{ id: number, dropped: true }>}
 */
export const dropOutbox = (id) => call('POST', `/outbox/${id}/drop`);

// ---- operators ----------------------------------------------------------------------------------------------

/** @returns {Promise<Operator[]>} */
export const listOperators = () => call('GET', '/operators');

/**
 * @param {{ name: string, role: string }} input
 * @returns {Promise<CreatedOperator>}
 */
export const createOperator = (input) => call('POST', '/operators', input);

/**
 * @param {string} name
 * @returns {Promise<Operator>}
 */
export const revokeOperator = (name) => call('POST', `/operators/${enc(name)}/revoke`);
