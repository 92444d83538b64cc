/**
 * A throw-away PKI made with the `openssl` command, and HTTPS requests to 127.0.0.1 through it, for the
 * client-certificate tests (client-certs.test.ts, ../security/client-certs.test.ts): a test CA, a rogue CA,
 * a server certificate for 127.0.0.1, and client certificates (EC P-256, clientAuth) signed by either.
 */
import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

export interface ClientCert {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 of the DER certificate, lowercase hex, as the gateway stores it. */
  fingerprint: string;
  /** The same as openssl prints it: upper case with colons. */
  colonFingerprint: string;
  subject: string;
}

export interface Pki {
  dir: string;
  file(name: string): string;
  caPem: Buffer;
  /** A client certificate with subject CN=<cn>, signed by the test CA (or the rogue CA). */
  client(name: string, cn: string, ca?: 'ca' | 'rogue-ca'): ClientCert;
  remove(): void;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makePki(prefix: string): Pki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const file = (name: string) => path.join(dir, name);
  let serial = 1;
  const openssl = (args: string[]) => {
    try {
      execFileSync('openssl', args, { cwd: dir, timeout: 20_000, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
      if (e.code === 'ENOENT')
        throw new Error('the `openssl` command is not installed: `sudo apt-get install openssl`', { cause: err });
      throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`, { cause: err });
    }
  };
  fs.writeFileSync(
    file('req.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = unused',
      '[ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    file('ext.cnf'),
    [
      '[server]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = IP:127.0.0.1',
      'authorityKeyIdentifier = keyid',
      '[client]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = clientAuth',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  const ca = (name: string, cn: string) =>
    openssl(
      ['req', '-x509', '-new', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2'].concat([
        '-subj',
        `/CN=${cn}`,
        '-config',
        'req.cnf',
        '-extensions',
        'ca',
      ]),
    );
  const leaf = (name: string, subj: string, signer: string, profile: 'server' | 'client') => {
    openssl([
      'req',
      '-new',
      ...KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subj,
      '-config',
      'req.cnf',
    ]);
    openssl(
      ['x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.crt`, '-CAkey', `${signer}.key`]
        .concat(['-set_serial', String(serial++), '-days', '2', '-out', `${name}.crt`])
        .concat(['-extfile', 'ext.cnf', '-extensions', profile]),
    );
  };
  ca('ca', 'agent-gate test CA');
  ca('rogue-ca', 'some other CA');
  leaf('server', '/CN=127.0.0.1', 'ca', 'server');
  return {
    dir,
    file,
    caPem: fs.readFileSync(file('ca.crt')),
    client(name, cn, signer = 'ca') {
      leaf(name, `/O=agent-gate tests/CN=${cn}`, signer, 'client');
      const cert = fs.readFileSync(file(`${name}.crt`));
      const key = fs.readFileSync(file(`${name}.key`));
      // The agent's ssl-cert-file: certificate and key in one PEM.
      fs.writeFileSync(file(`${name}.pem`), Buffer.concat([cert, key]));
      const x509 = new X509Certificate(cert);
      return {
        cert,
        key,
        colonFingerprint: x509.fingerprint256,
        fingerprint: x509.fingerprint256.replace(/:/g, '').toLowerCase(),
        subject: `O=agent-gate tests, CN=${cn}`,
      };
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request over a new TLS connection to 127.0.0.1, trusting only the test CA. */
export function httpsRequest(
  port: number,
  caPem: Buffer,
  opts: {
    method: string;
    path: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    cert?: Buffer;
    key?: Buffer;
  },
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const body = opts.body ?? '';
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method,
        path: opts.path,
        headers: { ...opts.headers, 'Content-Length': String(Buffer.byteLength(body)) },
        ca: caPem,
        cert: opts.cert,
        key: opts.key,
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(body);
  });
}

/** An agent's POST to / (XML unless told otherwise). */
export function httpsPost(
  port: number,
  caPem: Buffer,
  opts: { body: Buffer | string; contentType?: string; authorization?: string; cert?: Buffer; key?: Buffer },
): Promise<HttpsAnswer> {
  const headers: Record<string, string> = {
    'Content-Type': opts.contentType ?? 'application/xml',
    'User-Agent': 'GLPI-Agent_v1.12',
  };
  if (opts.authorization) headers.Authorization = opts.authorization;
  return httpsRequest(port, caPem, {
    method: 'POST',
    path: '/',
    headers,
    body: opts.body,
    cert: opts.cert,
    key: opts.key,
  });
}

/** A bare TLS 1.2 handshake: the server's verdict on the client certificate is part of the handshake itself. */
export function tls12Handshake(
  port: number,
  caPem: Buffer,
  opts: { cert?: Buffer; key?: Buffer },
): Promise<{ secure: true } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: caPem,
      cert: opts.cert,
      key: opts.key,
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timeout')));
    socket.once('secureConnect', () => {
      socket.end();
      resolve({ secure: true });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** What makes two 401s the same to a client: status, headers (but the date) and body bytes. */
export function answerShape(a: HttpsAnswer) {
  return { status: a.status, headers: { ...a.headers, date: '' }, body: a.body.toString('base64') };
}
