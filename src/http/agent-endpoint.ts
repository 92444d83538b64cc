/**
 * The agent endpoint, on every URL form agents are configured with. Cheapest checks first: method and size
 * before anything is read, the credential before the body is read or inflated, then capped inflation,
 * sniffing and parsing. Every answer — errors included — is in the agent's own format and compression,
 * with its correlation headers echoed; no stack trace or internal detail ever reaches an agent.
 */
import crypto from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { AppError, ERROR_STATUS, toAppError } from '../errors.js';
import { detectCompression, inflateBodyParts, partsLength } from '../protocol/decode.js';
import type { AgentMessage } from '../protocol/message.js';
import {
  type AgentAnswer,
  type AgentRequest,
  type AgentService,
  CredentialMisuse,
  isDuplicateMessage,
} from '../services/agent-service.js';
import type { AgentAuth, AuthResult } from './agent-auth.js';
import { type DbHealth, isUnavailable, withDeadline as settleWithin } from '../services/db-health.js';
import type { Spool } from '../services/spool.js';
import type { Metrics } from '../metrics.js';
import { type Clock, phaseLap } from '../clock.js';
import type { AgentLimits } from './limits.js';
import type { Admission } from '../services/admission.js';
import { compressionFromLabel, formatFromHeaders, header, sendAgentAnswer, sendAgentError } from './agent-answer.js';
import { requestLog } from './request-context.js';
import { parseBasic } from '../services/credentials.js';
import { ClientGone, type DecodeTicket, createDecodeBudget, createGate } from '../services/body-budget.js';
import type { ParsePool } from '../services/parse-pool.js';

/**
 * `/` (or one folder such as `/glpi/`), `/Inventory`, and `/front/inventory.php`, `/plugins/fusioninventory/…`,
 * `/plugins/glpiinventory/…`, `/marketplace/glpiinventory/…` under any prefix.
 */
export const AGENT_PATH =
  /^(?:(?:\/[A-Za-z0-9._-]+)?\/|\/Inventory|(?:\/[^/]+)*?(?:\/front\/inventory\.php|\/(?:plugins\/(?:fusioninventory|glpiinventory)|marketplace\/glpiinventory)(?:\/.*)?))$/;

export interface AgentEndpointDeps {
  service: AgentService;
  auth: AgentAuth;
  logger: Logger;
  clock: Clock;
  metrics: Metrics;
  limits: AgentLimits;
  admission: Admission;
  /** Large bodies processed at once (HEAVY_CONCURRENCY). */
  heavyConcurrency: number;
  /** Decompressed bytes in flight, gateway-wide (DECODE_BUDGET). */
  decodeBudget: number;
  /** Parses large bodies in worker threads. */
  parser: ParsePool;
  bodyLimit: number;
  inflateLimit: number;
  prologFreqHours: number;
  /** The database as this process last saw it (outage handling); absent = always try it. */
  health?: DbHealth;
  /** The local spool for inventories read while the database is away; absent = they get a 503 as before. */
  spool?: Spool | null;
}

/** The password or token of the Authorization header, so that copies of it in the body can be blanked. */
function presentedSecrets(req: Request): string[] {
  const authz = req.headers.authorization;
  if (!authz) return [];
  const bearer = /^Bearer\s+(\S+)/i.exec(authz);
  if (bearer) return [bearer[1]!];
  const basic = parseBasic(authz);
  return basic ? [basic.password] : [];
}

function baseRequest(req: Request, receivedAt: Date): AgentRequest {
  return {
    receivedAt,
    method: req.method,
    path: req.path,
    remoteAddr: req.ip ?? null,
    userAgent: header(req, 'User-Agent'),
    agentId: header(req, 'GLPI-Agent-ID'),
    proxyId: header(req, 'GLPI-Proxy-ID'),
    requestId: header(req, 'GLPI-Request-ID'),
    contentType: header(req, 'Content-Type'),
    body: Buffer.alloc(0),
    compression: compressionFromLabel(req),
    decodedSize: 0,
    principal: null,
    presentedSecrets: presentedSecrets(req),
    defer: null,
    authenticated: false,
  };
}

/** The agent endpoint as one middleware (no router of its own: it is entered by every agent request). */
export function agentEndpoint(deps: AgentEndpointDeps): RequestHandler {
  /** Observes the time since `since` as phase `name` (agentgate_agent_phase_seconds); returns now. */
  const lap = phaseLap((name, seconds) => deps.metrics.agentPhase(name, seconds));

  async function handleGet(req: Request, res: Response): Promise<void> {
    const action = typeof req.query.action === 'string' ? req.query.action : undefined;
    if (action?.toLowerCase() === 'getconfig') {
      const answer = deps.service.getConfig(); // needs no credential; writes nothing (counted below)
      deps.metrics.agentRequest('getconfig', 'none', answer.outcome);
      sendAgentAnswer(req, res, answer, 'none'); // always plain: agents do not decode a compressed getConfig answer
      return;
    }
    if (Object.keys(req.query).length === 0 && header(req, 'GLPI-Request-ID')) {
      // A pending poll: this gateway never answers "pending", so there is nothing to collect.
      sendAgentError(req, res, new AppError('not_found', 'Unknown request'), {
        format: 'json',
        compression: 'none',
        prologFreqHours: deps.prologFreqHours,
      });
      return;
    }
    methodNotAllowed(req, res);
  }

  function methodNotAllowed(_req: Request, res: Response): void {
    // The agents never send another method: an empty answer, as a plain web server gives.
    res.setHeader('Allow', 'GET, POST');
    res.status(ERROR_STATUS.method_not_allowed).end();
  }

  const heavy = createGate(deps.heavyConcurrency);
  const budget = createDecodeBudget(deps.decodeBudget);
  deps.metrics.decodeSource(() => ({
    budget: budget.limit,
    budgetInFlight: budget.inFlight,
    budgetWaiting: budget.waiting,
    heavyWaiting: heavy.waiting,
    pool: deps.parser.stats(),
    tasks: deps.parser.tasks,
  }));

  async function handlePost(req: Request, res: Response): Promise<void> {
    let t = performance.now();
    const ar = baseRequest(req, deps.clock.now());
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > deps.bodyLimit) {
      // Refuse before reading a byte; close the connection rather than swallow the rest of a huge upload.
      res.setHeader('Connection', 'close');
      return fail(req, res, ar, new AppError('payload_too_large', `Body larger than ${deps.bodyLimit} bytes`), null);
    }
    let auth: AuthResult;
    // The database is away and this credential was not verified recently enough to be known from memory
    // (OUTAGE_CREDENTIAL_TTL): what to answer depends on the message, so the body is read first.
    let unverified = false;
    try {
      auth = await withDeadline(deps.auth.authenticate(req, ar));
      t = lap('auth', t);
    } catch (err) {
      if (!isUnavailable(err)) return fail(req, res, ar, err, null);
      unverified = true;
      auth = { ok: true, principal: null };
    }
    if (!auth.ok) {
      if (auth.reason === 'invalid') await deps.limits.recordAuthFailure(req).catch(() => {});
      deps.metrics.agentRequest('unknown', formatFromHeaders(req), 'unauthorized');
      return deps.auth.challenge(req, res, auth, ar.compression);
    }
    ar.principal = auth.principal;
    ar.authenticated = !unverified; // an unverified one is checked once its body is read (verifyLate)
    // Two queues, each waited in before the body (or the rest of it) is read: it stays in the socket, TCP
    // holds the sender, and the agents wait 180 s for an answer. A large body (by its compressed size) waits
    // for one of HEAVY_CONCURRENCY slots; every body waits for room in the decode budget, charged with its
    // decoded bytes as they inflate. A client that leaves (disconnect, REQUEST_TIMEOUT) drops out of either
    // queue at once and gives its place back.
    const left = clientLeft(res);
    let queue: 'heavy' | 'budget' = 'heavy';
    let release: (() => void) | null = null;
    let ticket: DecodeTicket | null = null;
    try {
      if (declared > HEAVY_BODY_BYTES) release = await heavy(left.signal);
      queue = 'budget';
      ticket = await budget.open(left.signal);
      t = lap('queue', t);
      let body: Buffer;
      try {
        body = await readBody(req, deps.bodyLimit);
        lap('read', t);
      } catch (err) {
        // Past the limit the answer goes out at once and the connection closes; the rest is not read.
        if (err instanceof AppError && err.code === 'payload_too_large') res.setHeader('Connection', 'close');
        return await fail(req, res, ar, err, null);
      }
      if (!release && body.length > HEAVY_BODY_BYTES) {
        // Chunked: the size is known only now. Never wait for the gate while holding a budget account (each
        // queue would wait for the other): leave the budget (nothing is charged yet), take a slot, come back.
        ticket.close();
        ticket = null;
        queue = 'heavy';
        release = await heavy(left.signal);
        queue = 'budget';
        ticket = await budget.open(left.signal);
      }
      await processBody(req, res, ar, body, ticket, unverified);
    } catch (err) {
      if (!(err instanceof ClientGone)) throw err;
      // Nobody is left to answer; its place in the queue is already given back.
      deps.metrics.waiterLeft(queue);
      requestLog(res, deps.logger).info({ queue, remote: ar.remoteAddr }, 'agent left while its body waited');
    } finally {
      ticket?.close();
      release?.();
      left.dispose();
    }
  }

  async function processBody(
    req: Request,
    res: Response,
    ar: AgentRequest,
    body: Buffer,
    ticket: DecodeTicket,
    unverified = false,
  ): Promise<void> {
    ar.body = body;
    let msg: AgentMessage | null = null;
    try {
      if (body.length === 0) throw new AppError('bad_request', 'Empty body');
      ar.compression = detectCompression(ar.contentType ?? undefined, body);
      // Each decoded byte is charged to the budget as it is produced; past it the inflater waits.
      let t = performance.now();
      const decoded = await inflateBodyParts(body, ar.compression, deps.inflateLimit, (n) => ticket.charge(n));
      t = lap('inflate', t);
      ar.decodedSize = partsLength(decoded);
      // A large body is parsed in a worker thread; the inflater's output is moved there as it is, neither
      // joined nor copied on the event loop.
      msg = await deps.parser.parse(decoded, ar.presentedSecrets, ar.compression, decoded[0] !== body);
      t = lap('parse', t);
      if (msg.kind === 'prolog' || msg.kind === 'contact') {
        const outage = outageDeferral(msg.deviceid, unverified);
        const reason = outage ?? (await waitForSpooled(msg.deviceid));
        if (reason) return deferNow(req, res, ar, msg, reason);
        // Decided in Redis while handle() reads the device from PostgreSQL (one round trip of waiting instead
        // of two); handle() awaits it before the verdict is used. It counts the message either way, as before.
        const started = t;
        ar.admission = deps.admission
          .admit({
            deviceid: msg.deviceid,
            credential: ar.principal ? `${ar.principal.type}:${ar.principal.id}` : null,
            remoteAddr: ar.remoteAddr,
          })
          .finally(() => lap('admission', started));
        ar.admission.catch(() => {}); // awaited in handle(); never an unhandled rejection if handle() fails first
      } else if (unverified) {
        // Not known from memory: wait for the database (the agent waits 180 s) to check the credential.
        const verified = await verifyLate(req, ar);
        if (!verified.ok) {
          if (verified.reason === 'invalid') await deps.limits.recordAuthFailure(req).catch(() => {});
          deps.metrics.agentRequest(msg.kind, msg.format, 'unauthorized');
          return deps.auth.challenge(req, res, verified, compressionFromLabel(req));
        }
        ar.principal = verified.principal;
        ar.authenticated = true;
      }
      if (deps.spool && deps.service.spoolable(msg)) return await storeOrSpool(req, res, ar, msg, deps.spool);
      const answer = await withDeadline(
        deps.service.handle(ar, msg),
        msg.kind === 'prolog' || msg.kind === 'contact' ? GATE_DB_DEADLINE_MS : INVENTORY_DB_DEADLINE_MS,
      );
      t = lap('handle', t);
      deps.metrics.agentRequest(msg.kind, msg.format, answer.outcome);
      deps.metrics.inflated(ar.decodedSize);
      sendAgentAnswer(req, res, answer, ar.compression);
      lap('answer', t);
    } catch (err) {
      if (err instanceof ClientGone) throw err; // not a refusal: nobody is left to answer
      await fail(req, res, ar, err, msg);
    }
  }

  /** Why a PROLOG/CONTACT is told "not now" without trying the database, or null to go on. */
  function outageDeferral(_deviceid: string, unverified: boolean): string | null {
    if (unverified || deps.health?.down) return 'unavailable';
    // Room is kept for the inventories of agents already told to send.
    if (deps.spool?.fuller(SPOOL_GATE_FRACTION)) return 'spool';
    return null;
  }

  /**
   * A device with messages in the spool: its PROLOG/CONTACT waits for them to be recorded (replay is fast
   * once the database answers), so it is judged on its up-to-date record; past the bound it is deferred.
   */
  async function waitForSpooled(deviceid: string): Promise<string | null> {
    if (!deps.spool?.hasDevice(deviceid)) return null;
    return (await deps.spool.waitDevice(deviceid, GATE_DB_DEADLINE_MS)) ? null : 'spool';
  }

  function deferNow(req: Request, res: Response, ar: AgentRequest, msg: AgentMessage, reason: string): void {
    // Nothing is recorded (the database is away, or busy with the spool): the deferral is only counted.
    deps.metrics.deferred(reason);
    deps.metrics.agentRequest(msg.kind, msg.format, `deferred:${reason}`);
    sendAgentAnswer(req, res, deps.service.deferredAnswer(msg), ar.compression);
  }

  /** The credential check again, once the database answers (bounded by the inventory deadline). */
  async function verifyLate(req: Request, ar: AgentRequest): Promise<AuthResult> {
    if (deps.health && !(await deps.health.waitUp(INVENTORY_DB_DEADLINE_MS)))
      throw new AppError('unavailable', 'Service temporarily unavailable');
    return withDeadline(deps.auth.authenticate(req, ar), INVENTORY_DB_DEADLINE_MS);
  }

  /**
   * An inventory (or network-task result) that has been read: recorded if the database answers within
   * SPOOL_AFTER_MS, else appended to the spool (fsync'ed) and answered with the success it would have had.
   * It goes to the spool at once while the database is known to be away, and while its device has spooled
   * messages (so it is recorded after them). Its message key makes the record exactly once even when the
   * first attempt, abandoned at the deadline, commits after all.
   */
  async function storeOrSpool(
    req: Request,
    res: Response,
    ar: AgentRequest,
    msg: AgentMessage,
    spool: Spool,
  ): Promise<void> {
    ar.messageKey = crypto.randomUUID();
    const log = requestLog(res, deps.logger);
    let answer: AgentAnswer | null = null;
    let why: string | null = deps.health?.down
      ? 'database away'
      : spool.hasDevice(msg.deviceid)
        ? 'device has spooled messages'
        : null;
    const attempt = why === null ? deps.service.handle(ar, msg) : null;
    if (attempt) {
      try {
        answer = await settleWithin(attempt, SPOOL_AFTER_MS);
        deps.health?.markUp();
      } catch (err) {
        if (!isUnavailable(err)) throw err;
        deps.health?.markDown(err);
        why = err instanceof AppError && !err.cause ? `no answer within ${SPOOL_AFTER_MS} ms` : 'database unavailable';
      }
    }
    if (!answer) {
      const { header, body } = deps.service.toSpool(ar, msg);
      try {
        await spool.append(header, body);
        answer = deps.service.spooledAnswer(ar, msg);
        log.warn({ deviceid: msg.deviceid, key: ar.messageKey, why }, `${msg.kind} spooled: ${why}`);
      } catch (err) {
        // Nowhere to keep it (spool full, disk failing): the database is the last chance within the
        // agent's patience; only if it stays away is the answer a 503.
        log.error({ err, deviceid: msg.deviceid }, `${msg.kind} could not be spooled: waiting for the database`);
        try {
          answer = await withDeadline(attempt ?? deps.service.handle(ar, msg), INVENTORY_DB_DEADLINE_MS);
        } catch (e) {
          if (!isDuplicateMessage(e)) throw e;
          answer = { ...deps.service.spooledAnswer(ar, msg), outcome: 'accepted' };
        }
      }
    }
    deps.metrics.agentRequest(msg.kind, msg.format, answer.outcome);
    deps.metrics.inflated(ar.decodedSize);
    sendAgentAnswer(req, res, answer, ar.compression);
  }

  async function fail(
    req: Request,
    res: Response,
    ar: AgentRequest,
    err: unknown,
    msg: AgentMessage | null,
  ): Promise<void> {
    if (err instanceof CredentialMisuse) {
      await deps.limits.recordAuthFailure(req).catch(() => {});
      deps.metrics.agentRequest(msg?.kind ?? 'unknown', msg?.format ?? 'none', 'unauthorized');
      // Encoded from the headers alone, exactly like the 401 sent before the body was read (no oracle).
      return deps.auth.challenge(req, res, { ok: false, reason: 'invalid' }, compressionFromLabel(req));
    }
    const appErr = toAppError(err);
    const log = requestLog(res, deps.logger);
    if (appErr.code === 'unavailable') deps.health?.markDown(appErr);
    if (appErr.code === 'unavailable' && msg && (msg.kind === 'prolog' || msg.kind === 'contact')) {
      // Backing store away: a PROLOG/CONTACT is told "not now, come back later" (an error would bring the
      // agent back in 60 s, doubling); nothing was recorded, so the deferral is only counted.
      log.warn({ err: appErr.cause ?? appErr, deviceid: msg.deviceid }, 'database unavailable: agent deferred');
      deps.metrics.deferred('unavailable');
      deps.metrics.agentRequest(msg.kind, msg.format, 'deferred:unavailable');
      return sendAgentAnswer(req, res, { ...deps.service.deferredAnswer(msg) }, ar.compression);
    }
    const format = msg?.format ?? formatFromHeaders(req);
    log[appErr.status >= 500 ? 'error' : 'info'](
      {
        err: appErr.status >= 500 ? (appErr.cause ?? appErr) : undefined,
        code: appErr.code,
        status: appErr.status,
        path: ar.path,
        remote: ar.remoteAddr,
        deviceid: msg?.deviceid,
      },
      `agent request refused: ${appErr.publicMessage}`,
    );
    const outcome = appErr.status >= 500 ? 'failed' : 'refused';
    deps.metrics.agentRequest(msg?.kind ?? 'unknown', format, outcome);
    if (appErr.code !== 'unavailable') {
      await deps.service
        .recordRefusal(ar, {
          format: msg?.format ?? 'none',
          kind: msg?.kind,
          deviceid: msg?.deviceid,
          status: appErr.status,
          outcome,
          message: appErr.publicMessage,
        })
        .catch((e: unknown) => log.warn({ err: e }, 'could not record a refused agent request'));
    }
    if (!res.headersSent)
      sendAgentError(req, res, appErr, { format, compression: ar.compression, prologFreqHours: deps.prologFreqHours });
  }

  function dispatch(req: Request, res: Response, next: NextFunction): void {
    if (req.method === 'GET' || req.method === 'HEAD') return void handleGet(req, res).catch(next);
    if (req.method === 'POST') return void handlePost(req, res).catch(next);
    methodNotAllowed(req, res);
  }

  return (req, res, next) => {
    if (!AGENT_PATH.test(req.path)) return next();
    const t0 = performance.now();
    res.once('finish', () => lap('total', t0));
    // Abuse limits first: before the credential is checked or a byte of the body is read. The request is
    // counted for its address and the address's invalid credentials are read in one round trip; an address
    // past either budget is answered 429 (per-address first).
    deps.limits.edge(req).then(
      (refused) => {
        if (refused) return deps.limits.refuse(req, res, refused);
        lap('limits', t0);
        dispatch(req, res, next);
      },
      (e: unknown) => next(e),
    );
  };
}

/**
 * Longest an agent request waits for the database before it is answered "unavailable" (agents wait 180 s).
 * A PROLOG/CONTACT is then simply told to come back later, so it need not wait long; an inventory may be
 * committing on a busy database, so it waits longer before its answer says it was not taken.
 */
export const DB_DEADLINE_MS = 10_000;
export const INVENTORY_DB_DEADLINE_MS = 60_000;
/** A PROLOG/CONTACT that the database does not answer within this is told to come back later. */
export const GATE_DB_DEADLINE_MS = 5_000;
/**
 * An inventory that the database has not recorded within this goes to the spool. A healthy commit, even
 * group-committed under load, takes milliseconds; 5 s is far past that, so ordinary hiccups never spool,
 * while an away or overloaded database no longer holds the agent's socket and its body in memory for the
 * 60 s of INVENTORY_DB_DEADLINE_MS (and then a 503 that loses the inventory) — the spool answers at once.
 */
export const SPOOL_AFTER_MS = 5_000;
/** From this share of SPOOL_MAX on, new PROLOG/CONTACT are deferred: the rest is for inventories already ordered. */
export const SPOOL_GATE_FRACTION = 0.9;

/** Rejects with `unavailable` when the database does not answer in time (a silent network, a stuck pool). */
function withDeadline<T>(p: Promise<T>, ms = DB_DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AppError('unavailable', 'Service temporarily unavailable')), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** Compressed size from which a body counts as large (a 228 KB desktop inventory is ~18 KB compressed). */
export const HEAVY_BODY_BYTES = 256 * 1024;

/**
 * An AbortSignal aborted when the client goes away before its answer is sent (disconnect, or the socket
 * destroyed by REQUEST_TIMEOUT): the queues drop such a waiter.
 */
function clientLeft(res: Response): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) ac.abort();
  };
  if (res.socket?.destroyed ?? !res.socket) ac.abort();
  res.once('close', onClose);
  return { signal: ac.signal, dispose: () => res.off('close', onClose) };
}

/**
 * The request body as sent, at most `limit` bytes: past it (declared or while streaming, chunked included)
 * the read stops with a 413 at once. Content-Encoding is refused: agents announce compression with
 * Content-Type only, and a second layer would dodge the inflate cap.
 */
export function readBody(req: Request, limit: number): Promise<Buffer> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity')
    return Promise.reject(
      new AppError(
        'unsupported_media_type',
        'Content-Encoding is not supported; announce compression with Content-Type',
      ),
    );
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(new AppError('payload_too_large', `Body larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new AppError('bad_request', 'Incomplete request body', { cause: err }));
    };
    const onAborted = () => onError(new Error('request aborted'));
    // A socket closed before the body ended (even before these listeners: a waiter whose client left) must
    // settle the read, or its request would hold its queue slots forever.
    const onClose = () => onError(new Error('connection closed before the body ended'));
    if (req.destroyed || req.socket?.destroyed) return onClose();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
    req.on('close', onClose);
  });
}
