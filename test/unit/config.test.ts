import { describe, expect, it } from 'vitest';
import {
  CONFIG_KEYS,
  ConfigError,
  configTable,
  loadConfig,
  parseDuration,
  parseSize,
  secretStrengthBits,
} from '../../src/config.js';

const MB = 1024 * 1024;

function problemsOf(env: Record<string, string>): string[] {
  let thrown: unknown;
  try {
    loadConfig(env);
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(ConfigError);
  return (thrown as ConfigError).problems;
}

describe('loadConfig defaults', () => {
  const cfg = loadConfig({});

  it('listens on 0.0.0.0:8080', () => {
    expect(cfg.port).toBe(8080);
    expect(cfg.host).toBe('0.0.0.0');
  });

  it('asks agents back every 24 h and requires agent authentication', () => {
    expect(cfg.prologFreqHours).toBe(24);
    expect(cfg.agentAuth).toBe('required');
  });

  it('inflates at least 64 MB (network-device inventories reach 20 MB) and accepts 16 MB on the wire', () => {
    expect(cfg.inflateLimit).toBeGreaterThanOrEqual(64 * MB);
    expect(cfg.bodyLimit).toBe(16 * MB);
    expect(cfg.inflateLimit).toBeGreaterThanOrEqual(cfg.bodyLimit);
  });

  it('has a realm the agents can parse, and sane durations', () => {
    expect(cfg.authRealm).toMatch(/^[A-Za-z0-9 ._:/-]+$/);
    expect(cfg.tokenTtlSeconds).toBe(3600);
    expect(cfg.secretCacheSeconds).toBe(5);
    expect(cfg.requestTimeoutSeconds).toBe(120);
    expect(cfg.requestTimeoutSeconds).toBeLessThan(180); // the agents give up after 180 s
  });

  it('leaves optional keys unset', () => {
    for (const k of [
      'databaseUrl',
      'redisUrl',
      'bootstrapSecret',
      'bootstrapAdminToken',
      'trustProxy',
      'tlsCert',
      'tlsKey',
      'tlsClientCa',
    ] as const) {
      expect(cfg[k]).toBeUndefined();
    }
    expect(cfg.logLevel).toBe('info');
    expect(cfg.logPretty).toBe(false);
  });

  it('returns a frozen object', () => {
    expect(Object.isFrozen(cfg)).toBe(true);
  });

  it('does not read process.env when an env object is given', () => {
    const saved = process.env.PORT;
    process.env.PORT = '1234';
    try {
      expect(loadConfig({}).port).toBe(8080);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });
});

describe('loadConfig values', () => {
  it('reads every kind of value', () => {
    const cfg = loadConfig({
      PORT: '9090',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://u@db/x',
      LOG_LEVEL: 'DEBUG',
      LOG_PRETTY: 'yes',
      BODY_LIMIT: '8mb',
      INFLATE_LIMIT: '1gb',
      PROLOG_FREQ_HOURS: '240',
      AGENT_AUTH: 'off',
      AUTH_REALM: 'inventory gate',
      TOKEN_TTL: '7d',
      SECRET_CACHE_TTL: '0',
      REQUEST_TIMEOUT: '90s',
      TLS_CERT: '/c.pem',
      TLS_KEY: '/k.pem',
      TLS_CLIENT_CA: '/ca.pem',
    });
    expect(cfg).toMatchObject({
      port: 9090,
      host: '127.0.0.1',
      databaseUrl: 'postgres://u@db/x',
      logLevel: 'debug',
      logPretty: true,
      bodyLimit: 8 * MB,
      inflateLimit: 1024 * MB,
      prologFreqHours: 240,
      agentAuth: 'off',
      authRealm: 'inventory gate',
      tokenTtlSeconds: 7 * 86400,
      secretCacheSeconds: 0,
      requestTimeoutSeconds: 90,
      tlsCert: '/c.pem',
      tlsKey: '/k.pem',
      tlsClientCa: '/ca.pem',
    });
  });

  it('an empty optional value means unset', () => {
    expect(loadConfig({ DATABASE_URL: '', REDIS_URL: '' })).toMatchObject({
      databaseUrl: undefined,
      redisUrl: undefined,
    });
  });

  it.each([
    ['PORT', '70000'],
    ['PORT', 'http'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['PROLOG_FREQ_HOURS', '0'],
    ['PROLOG_FREQ_HOURS', '241'],
    ['AGENT_AUTH', 'maybe'],
    ['LOG_LEVEL', 'verbose'],
    ['LOG_PRETTY', 'sometimes'],
    ['BODY_LIMIT', '16 parsecs'],
    ['BODY_LIMIT', '100'],
    ['INFLATE_LIMIT', '2tb'],
    ['TOKEN_TTL', '5s'],
    ['TOKEN_TTL', '1h30m'],
    ['REQUEST_TIMEOUT', '0'],
    ['AUTH_REALM', 'with "quotes"'],
    ['AUTH_REALM', 'a,b'],
    ['AUTH_REALM', ''],
    ['AUTH_REALM', 'x'.repeat(65)],
  ])('refuses %s=%j, naming the key', (key, value) => {
    const problems = problemsOf({ [key]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${key}: `));
  });

  it('several bad keys produce ONE ConfigError listing every problem', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      PROLOG_FREQ_HOURS: '0',
      AGENT_AUTH: 'maybe',
      BODY_LIMIT: 'huge',
      TOKEN_TTL: 'forever',
    });
    expect(problems).toHaveLength(5);
    for (const key of ['PORT', 'PROLOG_FREQ_HOURS', 'AGENT_AUTH', 'BODY_LIMIT', 'TOKEN_TTL']) {
      expect(problems.some((p) => p.startsWith(`${key}:`))).toBe(true);
    }
  });

  it('the ConfigError message lists every problem on its own line', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig({ PORT: 'eighty', AGENT_AUTH: 'maybe' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err?.name).toBe('ConfigError');
    expect(err?.message.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(2);
    expect(err?.message).toContain('PORT');
    expect(err?.message).toContain('AGENT_AUTH');
  });

  it('INFLATE_LIMIT must not be below BODY_LIMIT', () => {
    expect(problemsOf({ BODY_LIMIT: '32mb', INFLATE_LIMIT: '16mb' })).toEqual([
      'INFLATE_LIMIT: must not be smaller than BODY_LIMIT',
    ]);
  });

  it('TLS_CERT and TLS_KEY go together; TLS_CLIENT_CA needs both', () => {
    expect(problemsOf({ TLS_CERT: '/c.pem' })[0]).toMatch(/TLS_CERT and TLS_KEY/);
    expect(problemsOf({ TLS_KEY: '/k.pem' })[0]).toMatch(/TLS_CERT and TLS_KEY/);
    expect(problemsOf({ TLS_CLIENT_CA: '/ca.pem' }).some((p) => p.startsWith('TLS_CLIENT_CA'))).toBe(true);
  });

  it('TLS_CLIENT_CERT is optional by default; required needs TLS_CLIENT_CA', () => {
    expect(loadConfig({}).tlsClientCert).toBe('optional');
    const tls = { TLS_CERT: '/c.pem', TLS_KEY: '/k.pem', TLS_CLIENT_CA: '/ca.pem' };
    expect(loadConfig({ ...tls, TLS_CLIENT_CERT: 'Required' }).tlsClientCert).toBe('required');
    expect(problemsOf({ TLS_CERT: '/c.pem', TLS_KEY: '/k.pem', TLS_CLIENT_CERT: 'required' })).toEqual([
      'TLS_CLIENT_CERT=required: needs TLS_CLIENT_CA',
    ]);
    expect(problemsOf({ ...tls, TLS_CLIENT_CERT: 'maybe' })[0]).toMatch(/^TLS_CLIENT_CERT: "maybe" is not one of/);
  });

  it.each([
    ['BOOTSTRAP_SECRET', 'acceptance-pw-0123456789'],
    ['BOOTSTRAP_SECRET', 'agk_short-but-prefixed'],
    ['BOOTSTRAP_ADMIN_TOKEN', 'ago_shared-test-token-0000000000000000000000000'],
    ['BOOTSTRAP_ADMIN_TOKEN', `ago_${'x'.repeat(40)}`],
    ['BOOTSTRAP_ADMIN_TOKEN', 'ago_abcdefghijklmnopqrstuvwxyz'],
  ])('refuses a weak %s (%s): one problem, saying why and how to make one', (key, value) => {
    const problems = problemsOf({ [key]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${key}: too weak \\(about \\d+ bits, at least 128 needed`));
    expect(problems[0]).toContain('openssl rand');
    expect(problems[0]).not.toContain(value);
  });

  it('accepts generated-looking BOOTSTRAP_* values of at least 128 bits', () => {
    const cfg = loadConfig({
      BOOTSTRAP_SECRET: 'agk_Vq3-xT8mLr2Zp9Wc4Ns7Jb1Ke',
      BOOTSTRAP_ADMIN_TOKEN: `ago_${'kT4_zQ9-mW2xR7vL1cN8bJ3hF6sD5pY0gU'}`,
    });
    expect(cfg.bootstrapSecret).toBe('agk_Vq3-xT8mLr2Zp9Wc4Ns7Jb1Ke');
    expect(secretStrengthBits('Vq3-xT8mLr2Zp9Wc4Ns7Jb1Ke')).toBeGreaterThanOrEqual(128);
    expect(loadConfig({ BOOTSTRAP_SECRET: '' }).bootstrapSecret).toBeUndefined();
  });

  it('never echoes the value of a secret key in a problem', () => {
    // A weak secret is refused, and neither its problem line nor a bad neighbour's may show its value.
    const problems = problemsOf({ BOOTSTRAP_SECRET: 'hunter2-secret', PORT: 'x' });
    expect(problems.join('\n')).not.toContain('hunter2-secret');
  });
});

describe('parseSize', () => {
  it.each([
    ['65536', 65536],
    ['1024b', 1024],
    ['16kb', 16 * 1024],
    ['16k', 16 * 1024],
    ['16mb', 16 * MB],
    ['16MB', 16 * MB],
    ['16m', 16 * MB],
    [' 16 mb ', 16 * MB],
    ['1.5mb', 1.5 * MB],
    ['1gb', 1024 * MB],
    ['2G', 2048 * MB],
  ])('%j = %d bytes', (raw, bytes) => {
    expect(parseSize(raw)).toBe(bytes);
  });

  it.each(['', 'mb', '16tb', '-1', '16 mb extra', 'lots'])('refuses %j', (raw) => {
    expect(() => parseSize(raw)).toThrow(/not a size/);
  });
});

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['90', 90],
    ['90s', 90],
    ['15m', 900],
    ['1h', 3600],
    ['7d', 604800],
    ['7D', 604800],
    [' 2 h ', 7200],
  ])('%j = %d s', (raw, seconds) => {
    expect(parseDuration(raw)).toBe(seconds);
  });

  it.each(['', 'd', '1.5h', '1w', '-5s', '1h30m', 'soon'])('refuses %j', (raw) => {
    expect(() => parseDuration(raw)).toThrow(/not a duration/);
  });
});

describe('configTable', () => {
  it('documents every key with its default', () => {
    const table = configTable();
    for (const key of CONFIG_KEYS) expect(table).toContain(`| \`${key.env}\` |`);
    expect(table).toContain('| `PORT` | `8080` |');
    expect(table).toContain('| `DATABASE_URL` | (unset) |');
  });

  it('every key has a one-line doc and a unique env name', () => {
    expect(new Set(CONFIG_KEYS.map((k) => k.env)).size).toBe(CONFIG_KEYS.length);
    for (const key of CONFIG_KEYS) {
      expect(key.doc.length).toBeGreaterThan(5);
      expect(key.doc).not.toContain('\n');
    }
  });
});
