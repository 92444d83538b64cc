/**
 * What the gateway does with one agent message: record it (device, registration, raw submission, view) in
 * one transaction and choose the answer the agent needs. Answers are chosen for the agents' real reactions
 * (../shared/PROTOCOL.md): PROLOG gets SEND, a GLPI Agent's PROLOG gets the JSON that moves it to the JSON
 * protocol, CONTACT gets tasks.inventory plus every other task disabled so no extra requests follow.
 * Outcomes are return values; an exception means the request could not be recorded and must not be acked.
 */
import {
  type Compression,
  detectCompression,
  inflateBody,
  jsonText,
  sniffFormat,
  xmlText,
} from '../protocol/decode.js';
import { MAX_VIEW_SECTIONS, parseJsonMessage, parseXmlMessage } from '../protocol/message.js';
import {
  encodeAnswer,
  getConfigAnswer,
  jsonContact,
  jsonError,
  jsonOk,
  xmlAck,
  xmlError,
  xmlProlog,
} from '../protocol/answers.js';
import type { AgentMessage, MessageKind, WireFormat } from '../protocol/message.js';
import type { Queryable, Sql } from '../store/db.js';
import type { RecordBatcher } from '../store/batcher.js';
import {
  type RecordInput,
  type Recorded,
  type RegistrationInput,
  isDuplicateMessage,
  lockInventory,
  loadSubmissionBody,
  mergePartialInventory,
  recordMessage,
  setInventoryView,
} from '../store/agent-store.js';
import { takeKeyDeviceSlot } from '../store/auth-store.js';
import { AppError, ERROR_STATUS } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { phaseLap } from '../clock.js';
import { type DeferReason, tenantOf } from './admission.js';
import type { AgentPrincipal } from './credentials.js';
import type { SpoolHeader } from './spool.js';
import { withDeadline } from './db-health.js';
import type { KeyUse } from './key-usage.js';
import { type InventoryViews, inlineViews } from './inventory-view.js';
import { type Conflict, credentialConflict, judgeMessage, pinVerdict } from './conflicts.js';

export interface AgentRequest {
  receivedAt: Date;
  method: string;
  path: string;
  remoteAddr: string | null;
  userAgent: string | null;
  agentId: string | null;
  proxyId: string | null;
  requestId: string | null;
  contentType: string | null;
  /** Body exactly as received. */
  body: Buffer;
  compression: Compression;
  decodedSize: number;
  /** Who the credential says this is; null when AGENT_AUTH=off. */
  principal: AgentPrincipal | null;
  /** The secret the agent presented, to blank out of what is stored; never stored or logged itself. */
  presentedSecrets: string[];
  /** Set when admission limits say "not now" for this PROLOG/CONTACT. */
  defer: DeferReason | null;
  /** The admission decision still being made (PROLOG/CONTACT): handle() sets `defer` from it. */
  admission?: Promise<DeferReason | null>;
  /** Unique per message that may be spooled: stored with its registration, so it is recorded at most once. */
  messageKey?: string | null;
  /** The message comes back from the spool (recorded later than it arrived; receivedAt is its arrival). */
  spooled?: boolean;
  /**
   * The credential check let the request in (a verified credential, or AGENT_AUTH=off). Until then nothing
   * the request says is recorded: a getConfig GET or a refusal before authentication writes no row.
   */
  authenticated: boolean;
}

/** What the spool keeps of a request besides its body: everything handle() reads, and no secret. */
export interface SpooledRequest extends SpoolHeader {
  method: string;
  path: string;
  remoteAddr: string | null;
  userAgent: string | null;
  agentId: string | null;
  proxyId: string | null;
  requestId: string | null;
  contentType: string | null;
  principal: AgentPrincipal | null;
}

/** Longest one replayed message may take before the replay counts the database as away and tries again later. */
export const REPLAY_DEADLINE_MS = 30_000;

export interface AgentAnswer {
  status: number;
  format: WireFormat;
  text: string;
  outcome: string;
}

export interface AgentServiceDeps {
  sql: Sql;
  /** Group commit for the hot path (one transaction for many agents). */
  batcher: RecordBatcher;
  prologFreqHours: number;
  /** Auto-approval rules, evaluated for quarantined devices after each message. */
  policies?: { evaluate(deviceId: number): Promise<string | null> };
  /** Told when a device appears or changes state on its own (new → quarantined, identity clash → conflict). */
  onDeviceEvent?: (event: {
    type: 'device.new' | 'device.conflict';
    deviceId: number;
    deviceid: string;
    state: string;
    details: Record<string, unknown>;
  }) => void;
  /** Records a security event (e.g. a device-bound credential used for another device). */
  securityEvent?: (
    kind: string,
    e: { remoteAddr: string | null; deviceid: string | null; details: Record<string, unknown> },
  ) => Promise<void>;
  /** UPSTREAM_URL is set: an approved device's inventories also go to the GLPI outbox, in the transaction that records them. */
  forward?: boolean;
  /** Builds inventory views (in a parse worker for large ones); default: on the event loop. */
  views?: InventoryViews;
  /** INFLATE_LIMIT: for spooled bodies decoded again at replay, and the most a device's stored view may hold. */
  inflateLimit?: number;
  logger?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** Counts each request made with a registration key version (services/key-usage.ts). */
  keyUsage?: { seen(u: KeyUse): Promise<void> };
  /** Told of each recorded message whose claimed tag differs from its credential's (metrics). */
  onClaimedTagMismatch?: (kind: MessageKind) => void;
  /**
   * Told of every message naming a deviceid the gateway does not know, before it is recorded (the spike
   * detector counts it); true when the request's key is in a new-device spike right now.
   */
  newDeviceid?: (e: { req: AgentRequest; kind: MessageKind }) => Promise<boolean>;
  /**
   * The fair budget (admission.ts) for a first contact that is not a PROLOG/CONTACT: an inventory naming a
   * deviceid the gateway does not know. null = admitted.
   */
  admitFirstContact?: (req: AgentRequest, deviceid: string) => Promise<DeferReason | null>;
  metrics?: Pick<Metrics, 'deferred' | 'newDeviceid'>;
  /** Told how long each phase of handle() took (agentgate_agent_phase_seconds): identity, spike, record_tx, after. */
  phase?: (name: string, seconds: number) => void;
}

/** The `key` label of agentgate_new_deviceids_total: the registration key's name, else the credential type. */
function keyLabel(req: AgentRequest): string {
  const p = req.principal;
  if (!p) return 'none';
  return p.type === 'key' ? p.name : p.type;
}

/** Thrown when a credential is used outside what it allows: answered exactly like a bad credential. */
export class CredentialMisuse extends AppError {
  constructor(message: string) {
    super('unauthorized', 'Authorization required', { details: { misuse: message } });
  }
}

/** Retry-After for an inventory of an unknown device refused by the spike deferral or the fair budget. */
export const FIRST_CONTACT_RETRY_SECONDS = 3600;

/** A record of this message exists already (its message key): it was recorded, by an earlier try or replay. */
export { isDuplicateMessage };

export function authColumns(p: AgentPrincipal | null) {
  if (!p)
    return {
      authType: null,
      authUser: null,
      keyId: null,
      keyVersionId: null,
      clientPk: null,
      certFingerprint: null,
      certSubject: null,
    };
  return {
    // A certificate is presented one way only: its type alone (`cert`); the others say how (`key:basic`).
    authType: p.type === 'cert' ? 'cert' : `${p.type}:${p.via}`,
    authUser: p.username,
    keyId: p.type === 'key' ? p.id : null,
    keyVersionId: p.keyVersionId,
    clientPk: p.type === 'client' ? p.id : null,
    certFingerprint: p.cert?.fingerprint ?? null,
    certSubject: p.cert?.subject ?? null,
  };
}

const STORED_KINDS = new Set<MessageKind>(['inventory', 'netdiscovery', 'netinventory']);

/** How often (hours) a rejected device's agent is asked to come back. */
export const REJECTED_FREQ_HOURS = 240;

/** Why an agent was told "not now" instead of being given an inventory order. */

/** Deferred agents come back between 1 hour and this many hours later. */
export const DEFER_MAX_HOURS = 4;

export function createAgentService(deps: AgentServiceDeps) {
  const freq = deps.prologFreqHours;
  const views = deps.views ?? inlineViews;
  const inflateLimit = deps.inflateLimit ?? 256 * 1024 * 1024;
  /** Observes the time since `since` as `name`; returns now (the start of the next phase). */
  const lap = phaseLap(deps.phase);

  /** Key usage: who used which key version, from where, when last (not on registrations' history). */
  function noteKeyUse(req: AgentRequest, deviceid: string | null, deviceId: number | null): Promise<void> {
    const p = req.principal;
    if (!deps.keyUsage || p?.type !== 'key' || !p.keyVersionId) return Promise.resolve();
    return deps.keyUsage.seen({
      keyVersionId: p.keyVersionId,
      deviceid,
      remoteAddr: req.remoteAddr,
      deviceId,
      at: req.receivedAt,
    });
  }

  /**
   * A rejected device is told, in terms both agents honour, to skip its inventory and come back rarely:
   * PROLOG without SEND (XML for the GLPI Agent too: a JSON PROLOG answer would not stop this run's
   * inventory), CONTACT with the inventory task disabled; anything it sends anyway gets a plain ok.
   */
  function rejectedAnswer(msg: AgentMessage): Omit<AgentAnswer, 'outcome'> | null {
    if (msg.kind === 'prolog') return { status: 200, format: 'xml', text: xmlProlog(REJECTED_FREQ_HOURS, false) };
    if (msg.kind === 'contact')
      return { status: 200, format: 'json', text: jsonContact(REJECTED_FREQ_HOURS, { inventory: false }) };
    return null;
  }

  /**
   * "Not now": a successful answer without an inventory order and with a later next contact, spread with
   * jitter so a herd comes back spread out. The agents honour this and log no error (PROTOCOL §5).
   */
  function deferredAnswer(msg: AgentMessage): Omit<AgentAnswer, 'outcome'> {
    if (msg.kind === 'prolog')
      return { status: 200, format: 'xml', text: xmlProlog(1 + Math.floor(Math.random() * DEFER_MAX_HOURS), false) };
    const minutes = 60 + Math.floor(Math.random() * (DEFER_MAX_HOURS - 1) * 60);
    return { status: 200, format: 'json', text: jsonContact(`${minutes}m`, { inventory: false }) };
  }

  function answerFor(msg: AgentMessage, req: AgentRequest): Omit<AgentAnswer, 'outcome'> {
    if (req.defer && (msg.kind === 'prolog' || msg.kind === 'contact')) return deferredAnswer(msg);
    switch (msg.kind) {
      case 'prolog':
        // A PROLOG from a GLPI Agent (it sends GLPI-Agent-ID) is answered in JSON: that moves it to the JSON protocol.
        return req.agentId
          ? { status: 200, format: 'json', text: jsonOk(freq) }
          : { status: 200, format: 'xml', text: xmlProlog(freq, true) };
      case 'contact':
        return { status: 200, format: 'json', text: jsonContact(freq, { inventory: true }) };
      case 'inventory':
      case 'netdiscovery':
      case 'netinventory':
        return msg.format === 'json'
          ? { status: 200, format: 'json', text: jsonOk(freq) }
          : { status: 200, format: 'xml', text: xmlAck() };
      case 'get_params':
        return { status: 200, format: 'json', text: jsonOk(freq) };
      default: {
        const message =
          msg.format === 'json'
            ? `Action '${msg.action}' is not supported.`
            : `Query '${msg.action}' is not supported.`;
        return {
          status: ERROR_STATUS.not_implemented,
          format: msg.format,
          text: msg.format === 'json' ? jsonError(message, freq) : xmlError(message),
        };
      }
    }
  }

  /** The columns every registration takes from the request itself: when, how, from where, by whom. */
  function requestColumns(req: AgentRequest) {
    return {
      receivedAt: req.receivedAt,
      method: req.method,
      path: req.path,
      remoteAddr: req.remoteAddr,
      userAgent: req.userAgent,
      agentId: req.agentId,
      proxyId: req.proxyId,
      requestId: req.requestId,
      ...authColumns(req.principal),
    };
  }

  function registrationOf(
    req: AgentRequest,
    msg: AgentMessage,
    deviceId: number | null,
    answer: AgentAnswer,
  ): RegistrationInput {
    return {
      deviceId,
      deviceid: msg.deviceid,
      kind: msg.kind,
      format: msg.format,
      compression: req.compression,
      bodySize: req.body.length,
      decodedSize: req.decodedSize,
      partial: msg.partial,
      outcome: answer.outcome,
      status: answer.status,
      message: answer.status >= 400 ? `${msg.format} ${msg.kind} ${msg.action}` : null,
      details: msg.kind === 'contact' ? contactDetails(msg) : req.spooled ? { spooled: true } : null,
      messageKey: req.messageKey ?? null,
      claimedTag: claimedTagOf(msg),
      ...requestColumns(req),
    };
  }

  /** The bytes kept for a submission: as received, unless redaction changed the text. */
  function storedBody(req: AgentRequest, msg: AgentMessage): { body: Buffer; compression: Compression } {
    if (!msg.redacted) return { body: req.body, compression: req.compression };
    if (msg.offThread?.reencoded) return msg.offThread.reencoded; // re-encoded by the parse worker
    const compression = req.compression === 'deflate' ? 'zlib' : req.compression;
    return { body: encodeAnswer(msg.text, msg.format, compression).body, compression };
  }

  async function handle(req: AgentRequest, msg: AgentMessage): Promise<AgentAnswer> {
    // Network-task messages describe other devices: never let them create or change the sender's record.
    const touchesDevice =
      msg.kind === 'prolog' || msg.kind === 'contact' || msg.kind === 'inventory' || msg.kind === 'get_params';
    const admissible = msg.kind === 'prolog' || msg.kind === 'contact';
    const bound = req.principal?.boundDeviceid;
    if (bound && touchesDevice && bound !== msg.deviceid) {
      // A per-device credential presented with another device's identity: refused like a bad credential.
      await deps.securityEvent?.('client_device_mismatch', {
        remoteAddr: req.remoteAddr,
        deviceid: msg.deviceid,
        details: { clientId: req.principal!.clientId, boundDeviceid: bound, kind: msg.kind },
      });
      throw new CredentialMisuse(`client bound to ${bound} used for ${msg.deviceid}`);
    }
    const stored = STORED_KINDS.has(msg.kind) ? storedBody(req, msg) : null;
    let device: ReturnType<typeof deviceFacts> | null = touchesDevice ? deviceFacts(req, msg) : null;
    let t = performance.now();
    if (device) {
      const judged = await judgeIdentity(req, msg);
      t = lap('identity', t);
      if (req.admission) req.defer = await takeAdmission(req);
      device.conflict = judged.conflict;
      if (judged.known === null) {
        // A deviceid the gateway has never seen: counted per key and subnet (the spike detector) whatever
        // happens next. While its key is in a spike, a PROLOG/CONTACT of a new deviceid is told to come back
        // later; and a deferred PROLOG/CONTACT of a new deviceid creates no device (so no review-queue entry):
        // only its registration row is written. Its agent comes back in 1-4 h and registers then.
        const spiking = (await deps.newDeviceid?.({ req, kind: msg.kind })) === true;
        if (spiking && admissible && !req.defer) {
          req.defer = 'spike';
          deps.metrics?.deferred('spike');
        }
        if (req.defer && admissible) device = null;
        if (!admissible && !req.spooled) {
          // SECURITY: a first contact without PROLOG/CONTACT (an inventory under a fresh deviceid) would
          // otherwise create a device outside the spike deferral and the fair budget. The agents' own runs
          // register with PROLOG/CONTACT first, so their inventory names a known device; a sender that skips
          // it is answered "come back later" (429, nothing recorded but the refusal) past either limit.
          // (A spooled message was accepted before the outage; it is recorded as it was acknowledged.)
          const reason = spiking ? 'spike' : ((await deps.admitFirstContact?.(req, msg.deviceid)) ?? null);
          if (reason) {
            deps.metrics?.deferred(reason);
            deps.metrics?.newDeviceid(keyLabel(req), 'deferred');
            throw new AppError(
              'rate_limited',
              'New device: register with PROLOG or CONTACT first, or come back later',
              {
                retryAfterSeconds: FIRST_CONTACT_RETRY_SECONDS,
              },
            );
          }
        }
        deps.metrics?.newDeviceid(keyLabel(req), req.defer && admissible ? 'deferred' : 'registered');
        t = lap('spike', t);
      }
    }
    if (req.admission) req.defer = await takeAdmission(req); // a message without a device to judge
    let answer: AgentAnswer = { ...answerFor(msg, req), outcome: 'accepted' };
    if (answer.status >= 400) answer.outcome = 'unsupported';
    else if (req.defer && admissible) answer.outcome = `deferred:${req.defer}`;
    const record: RecordInput = {
      device,
      registration: registrationOf(req, msg, null, answer),
      submission: stored && {
        receivedAt: req.receivedAt,
        kind: msg.kind,
        format: msg.format,
        compression: stored.compression,
        contentType: req.contentType,
        partial: msg.partial,
        decodedSize: req.decodedSize,
        body: stored.body,
      },
      fullInventory: msg.kind === 'inventory' && !msg.partial,
      summary: msg.summary as Record<string, unknown> | null, // null but for a full inventory
      forward: deps.forward === true && msg.kind === 'inventory',
    };
    const key = req.principal?.type === 'key' ? req.principal : null;
    const partial = msg.kind === 'inventory' && msg.partial;
    const limited = key !== null && key.maxDevices > 0;
    if (key && !limited) record.countForKeyId = key.id;
    let rec: Recorded;
    if (!partial && !limited) {
      // The hot path: one statement, committed together with whatever other agents sent meanwhile.
      rec = await deps.batcher.record(record);
    } else {
      rec = await deps.sql.begin(async (tx) => {
        const rec = await recordMessage(tx, record);
        // A key's max_devices counts the devices it registered; the new device row is rolled back when full.
        if (rec.inserted && key && !(await takeKeyDeviceSlot(tx, key.id))) {
          throw new AppError('forbidden', 'Registration key has reached its device limit');
        }
        if (partial && rec.deviceId !== null && rec.state !== 'rejected' && rec.state !== 'conflict')
          await mergePartial(tx, rec.deviceId, msg, req.receivedAt);
        return rec;
      });
      lap('record_tx', t);
    }
    t = performance.now(); // the batcher observes its own record_wait and record_statement
    await noteKeyUse(req, msg.deviceid, rec.deviceId);
    const claimed = claimedTagOf(msg);
    if (claimed !== null && req.principal?.tag && claimed !== req.principal.tag) deps.onClaimedTagMismatch?.(msg.kind);
    let state = rec.state;
    if (state === 'quarantined' && rec.deviceId !== null && deps.policies)
      state = ((await deps.policies.evaluate(rec.deviceId)) as typeof state) ?? state;
    if (rec.deviceId !== null && state && deps.onDeviceEvent) {
      const base = { deviceId: rec.deviceId, deviceid: msg.deviceid, state };
      if (rec.inserted)
        deps.onDeviceEvent({
          type: 'device.new',
          ...base,
          details: {
            name: msg.identity?.name ?? null,
            tag: msg.identity?.tag ?? null,
            remoteAddr: req.remoteAddr,
            keyName: req.principal?.type === 'key' ? req.principal.name : null,
            clientId: req.principal?.clientId ?? null,
          },
        });
      if (state === 'conflict' && rec.previousState !== 'conflict')
        deps.onDeviceEvent({ type: 'device.conflict', ...base, details: device?.conflict?.details ?? {} });
    }
    if (answer.status < 400 && answer.outcome === 'accepted' && state !== null && state !== 'approved') {
      answer = { ...(state === 'rejected' ? (rejectedAnswer(msg) ?? answer) : answer), outcome: state };
    }
    lap('after', t);
    return answer;
  }

  /**
   * Who this message may speak for (see conflicts.ts): refused like a bad credential when the device is
   * pinned to a client or certificate that is not this one; a conflict when it is pinned to another key,
   * or when the hardware it reports contradicts the device on record.
   */
  async function judgeIdentity(
    req: AgentRequest,
    msg: AgentMessage,
  ): Promise<{ conflict: Conflict | null; known: unknown }> {
    const judged = await judgeMessage(deps.sql, msg.deviceid, msg.identity ?? null, {
      full: msg.kind === 'inventory' && !msg.partial,
      sections: new Set(msg.sections),
      bound: req.principal !== null,
    });
    const known = judged.known;
    if (req.principal) {
      const verdict = pinVerdict(known, judged.boundClient, req.principal);
      if (verdict === 'refuse') {
        await deps.securityEvent?.('device_credential_mismatch', {
          remoteAddr: req.remoteAddr,
          deviceid: msg.deviceid,
          details: {
            credential: `${req.principal.type}:${req.principal.name}`,
            certFingerprint: req.principal.cert?.fingerprint ?? null,
            kind: msg.kind,
          },
        });
        throw new CredentialMisuse(`device ${msg.deviceid} is pinned to another credential`);
      }
      if (verdict === 'conflict' && known) return { conflict: credentialConflict(known, req.principal), known };
    }
    return { conflict: judged.conflict, known };
  }

  /** Merges a partial inventory into the view, first building the view from the last full one if needed. */
  async function mergePartial(tx: Queryable, deviceId: number, msg: AgentMessage, at: Date): Promise<void> {
    const state = await lockInventory(tx, deviceId);
    if (state && !state.hasView && state.fullSubmissionId !== null) {
      const full = await loadSubmissionBody(tx, state.fullSubmissionId);
      if (full)
        await setInventoryView(tx, deviceId, await views.viewJson(full.body, full.compression, full.format), at);
    }
    const content = msg.offThread?.contentJson ?? ((msg.json?.content ?? {}) as Record<string, unknown>);
    const { before, after } = await mergePartialInventory(tx, deviceId, content, msg.format, at);
    // SECURITY: a total across requests. Each partial is within INFLATE_LIMIT, but partials bringing new
    // sections would pile up under one device without end. Only growth is refused, so a device whose full
    // inventory is already near a limit still takes partials that keep or shrink it.
    if (after.sections > MAX_VIEW_SECTIONS && after.sections > before.sections)
      throw new AppError(
        'payload_too_large',
        `Partial inventory would store more than ${MAX_VIEW_SECTIONS} sections for this device`,
      );
    if (after.bytes > inflateLimit && after.bytes > before.bytes)
      throw new AppError(
        'payload_too_large',
        `Partial inventory would store more than ${inflateLimit} bytes for this device`,
      );
  }

  function recordRegistration(registration: RegistrationInput): Promise<unknown> {
    return deps.batcher.record({ device: null, registration, submission: null, fullInventory: false });
  }

  /**
   * getConfig GETs (Deploy, ESX, Collect): the quiet "no job" answer, needing no credential. The agents send
   * them without one (they would only add it after a 401), so what they say — a machineid, a path — is
   * merely asserted: nothing is written, they are only counted (agentgate_agent_requests_total{kind="getconfig"}).
   */
  function getConfig(): AgentAnswer {
    return { status: 200, format: 'json', text: getConfigAnswer(), outcome: 'accepted' };
  }

  /**
   * Records a request refused after authentication, before (or while) it could be understood: the refusal
   * is the only row written. A refusal before authentication writes nothing.
   */
  async function recordRefusal(
    req: AgentRequest,
    info: {
      format: WireFormat | 'none';
      kind?: MessageKind;
      deviceid?: string | null;
      status: number;
      outcome: string;
      message: string;
    },
  ): Promise<void> {
    // Before authentication nothing is written (it is counted in agentgate_agent_requests_total and logged):
    // an unauthenticated sender may not add rows, under a deviceid it names or at all.
    if (!req.authenticated) return;
    await recordRegistration({
      deviceId: null,
      deviceid: info.deviceid ?? null,
      kind: info.kind ?? 'other',
      format: info.format,
      compression: req.compression,
      bodySize: req.body.length,
      decodedSize: req.decodedSize,
      partial: false,
      outcome: info.outcome,
      status: info.status,
      message: info.message,
      details: null,
      ...requestColumns(req),
    });
    await noteKeyUse(req, info.deviceid ?? null, null);
  }

  /** Messages that carry data: read while the database is away, they go to the spool rather than fail. */
  function spoolable(msg: AgentMessage): boolean {
    return STORED_KINDS.has(msg.kind);
  }

  /** The answer a spooled message gets now: an inventory's answer does not depend on the device's state. */
  function spooledAnswer(req: AgentRequest, msg: AgentMessage): AgentAnswer {
    return { ...answerFor(msg, { ...req, defer: null }), outcome: 'spooled' };
  }

  /** The spool record of a request: its header (no secret) and the body as it would be stored (redacted). */
  function toSpool(req: AgentRequest, msg: AgentMessage): { header: SpooledRequest; body: Buffer } {
    const stored = storedBody(req, msg);
    return {
      header: {
        v: 1,
        key: req.messageKey!,
        deviceid: msg.deviceid,
        kind: msg.kind,
        receivedAt: req.receivedAt.toISOString(),
        // Its share of SPOOL_MAX (spool.ts spoolShare): the credential's, or the address's without one.
        owner: tenantOf(req.principal ? `${req.principal.type}:${req.principal.id}` : null, req.remoteAddr),
        method: req.method,
        path: req.path,
        remoteAddr: req.remoteAddr,
        userAgent: req.userAgent,
        agentId: req.agentId,
        proxyId: req.proxyId,
        requestId: req.requestId,
        contentType: req.contentType,
        principal: req.principal,
      },
      body: stored.body,
    };
  }

  /**
   * A message back from the spool, judged exactly as if it had arrived then: the same handle() (pinning,
   * conflicts, quarantine of unknown devices, policies), with its arrival time and the credential verified
   * at arrival. Exactly once: a message already recorded under its key is done. A refusal (a misused
   * credential, a full key) is recorded like any refusal; the database away throws, to be tried again.
   */
  async function replaySpooled(h: SpooledRequest, body: Buffer): Promise<void> {
    const req: AgentRequest = {
      receivedAt: new Date(h.receivedAt),
      method: h.method,
      path: h.path,
      remoteAddr: h.remoteAddr,
      userAgent: h.userAgent,
      agentId: h.agentId,
      proxyId: h.proxyId,
      requestId: h.requestId,
      contentType: h.contentType,
      body,
      compression: detectCompression(h.contentType ?? undefined, body),
      decodedSize: 0,
      principal: h.principal,
      presentedSecrets: [], // redacted before it was spooled
      defer: null,
      authenticated: true, // verified at arrival, before it was spooled
      messageKey: h.key,
      spooled: true,
    };
    const decoded = await inflateBody(body, req.compression, inflateLimit);
    req.decodedSize = decoded.length;
    const msg =
      sniffFormat(decoded) === 'json'
        ? parseJsonMessage(jsonText(decoded), [])
        : parseXmlMessage(xmlText(decoded).text, []);
    try {
      const answer = await withDeadline(handle(req, msg), REPLAY_DEADLINE_MS);
      deps.logger?.info({ key: h.key, deviceid: msg.deviceid, outcome: answer.outcome }, 'spooled message recorded');
    } catch (err) {
      if (isDuplicateMessage(err)) return; // recorded before (a crash before the spool forgot it, or a late first try)
      if (err instanceof AppError && err.status < 500) {
        deps.logger?.warn({ key: h.key, deviceid: msg.deviceid, code: err.code }, 'spooled message refused at replay');
        await recordRefusal(req, {
          format: msg.format,
          kind: msg.kind,
          deviceid: msg.deviceid,
          status: err.status,
          outcome: 'refused',
          message: err.publicMessage,
        });
        return;
      }
      throw err;
    }
  }

  return { handle, getConfig, recordRefusal, deferredAnswer, spoolable, spooledAnswer, toSpool, replaySpooled };
}

export type AgentService = ReturnType<typeof createAgentService>;

function deviceFacts(req: AgentRequest, msg: AgentMessage) {
  const id = msg.identity;
  return {
    deviceid: msg.deviceid,
    initialState: 'quarantined' as const,
    conflict: null as { withId: number | null; details: Record<string, unknown> } | null,
    name: id?.name,
    uuid: id?.uuid,
    serial: id?.serial,
    msn: id?.msn,
    assetTag: id?.assetTag,
    manufacturer: id?.manufacturer,
    model: id?.model,
    macs: id?.macs,
    ips: id?.ips,
    os: id?.os,
    // The claimed tag comes from inventories, the documents that are judged and forwarded; a CONTACT's tag
    // is kept on its registration only, so a bare CONTACT under a deviceid cannot relabel the device.
    tag: id?.tag,
    agentId: req.agentId,
    agentVersion: id?.agentVersion ?? req.userAgent,
    remoteAddr: req.remoteAddr,
    seenAt: req.receivedAt,
    inventoryAt: msg.kind === 'inventory' ? req.receivedAt : null,
    registeredKeyId: req.principal?.type === 'key' ? req.principal.id : null,
    registeredClientPk: req.principal?.type === 'client' ? req.principal.id : null,
    registeredCertId: req.principal?.type === 'cert' ? req.principal.id : null,
    assignedTag: req.principal?.tag ?? null,
  };
}

/** The admission decision started by the endpoint, taken once (a later step may set `defer` itself: spike). */
function takeAdmission(req: AgentRequest): Promise<DeferReason | null> {
  const pending = req.admission!;
  req.admission = undefined;
  return pending;
}

/** The tag a message claims: an inventory's TAG (as GLPI would read it), a CONTACT's `tag`; else null. */
function claimedTagOf(msg: AgentMessage): string | null {
  if (msg.identity) return msg.identity.tag;
  const tag = msg.kind === 'contact' ? msg.json?.tag : undefined;
  return typeof tag === 'string' && tag !== '' ? tag.slice(0, 255) : null;
}

/** What a CONTACT says about the agent, secrets already redacted by the protocol layer. */
function contactDetails(msg: AgentMessage): Record<string, unknown> {
  const j = msg.json ?? {};
  const pick = ['enabled-tasks', 'installed-tasks', 'httpd-port', 'httpd-plugins', 'name', 'version', 'tag'];
  return Object.fromEntries(pick.filter((k) => k in j).map((k) => [k, j[k]]));
}
