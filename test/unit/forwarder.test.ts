/**
 * The pure parts of GLPI forwarding: its configuration checks, the token URL derived from UPSTREAM_URL
 * (PROTOCOL §3.9), the back-off schedule and the Content-Type sent upstream.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { forwardBackoffMs, forwardContentType, upstreamTokenUrl } from '../../src/services/forwarder.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('forwarding configuration', () => {
  it('is off by default, with 2 workers and 5 attempts for refusals', () => {
    const cfg = loadConfig({});
    expect(cfg.upstreamUrl).toBeUndefined();
    expect(cfg.upstreamWorkers).toBe(2);
    expect(cfg.upstreamMaxAttempts).toBe(5);
  });

  it('takes one http(s) URL, without credentials in it', () => {
    expect(loadConfig({ UPSTREAM_URL: 'https://glpi.example/front/inventory.php' }).upstreamUrl).toBe(
      'https://glpi.example/front/inventory.php',
    );
    expect(problemsOf({ UPSTREAM_URL: 'ftp://glpi.example/' })).toEqual([
      'UPSTREAM_URL: ftp: URLs are not supported (http or https only)',
    ]);
    expect(problemsOf({ UPSTREAM_URL: 'https://u:p@glpi.example/' })[0]).toMatch(
      /^UPSTREAM_URL: user:password in the URL is not supported/,
    );
    expect(problemsOf({ UPSTREAM_URL: 'not a url' })[0]).toMatch(/^UPSTREAM_URL: "not a url" is not a URL/);
  });

  it('wants Basic or OAuth2 credentials whole, not both, and only with UPSTREAM_URL', () => {
    const url = { UPSTREAM_URL: 'https://glpi.example/' };
    expect(problemsOf({ ...url, UPSTREAM_USER: 'gate' })).toEqual([
      'UPSTREAM_USER and UPSTREAM_PASSWORD: set both or neither',
    ]);
    expect(problemsOf({ ...url, UPSTREAM_CLIENT_SECRET: 's' })).toEqual([
      'UPSTREAM_CLIENT_ID and UPSTREAM_CLIENT_SECRET: set both or neither',
    ]);
    expect(
      problemsOf({
        ...url,
        UPSTREAM_USER: 'u',
        UPSTREAM_PASSWORD: 'p',
        UPSTREAM_CLIENT_ID: 'c',
        UPSTREAM_CLIENT_SECRET: 's',
      }),
    ).toEqual(['UPSTREAM_USER and UPSTREAM_CLIENT_ID: choose Basic or OAuth2, not both']);
    expect(problemsOf({ UPSTREAM_USER: 'u', UPSTREAM_PASSWORD: 'p' })).toEqual([
      'UPSTREAM_USER / UPSTREAM_CLIENT_ID: need UPSTREAM_URL',
    ]);
    expect(problemsOf({ ...url, UPSTREAM_WORKERS: '0', UPSTREAM_MAX_ATTEMPTS: '1' })).toEqual([]);
    expect(problemsOf({ UPSTREAM_MAX_ATTEMPTS: '0' })).toEqual(['UPSTREAM_MAX_ATTEMPTS: 0 is outside 1..100']);
  });
});

describe('upstreamTokenUrl', () => {
  it.each([
    ['https://glpi.example/', 'https://glpi.example/api.php/token'],
    ['https://glpi.example/glpi/', 'https://glpi.example/glpi/api.php/token'],
    ['https://glpi.example/glpi/plugins/glpiinventory/', 'https://glpi.example/glpi/api.php/token'],
    ['https://glpi.example/glpi/marketplace/glpiinventory/', 'https://glpi.example/glpi/api.php/token'],
    ['https://glpi.example/glpi/front/inventory.php', 'https://glpi.example/glpi/api.php/token'],
    ['http://127.0.0.1:8080/front/inventory.php?x=1', 'http://127.0.0.1:8080/api.php/token?x=1'],
  ])('%s → %s', (url, token) => {
    expect(upstreamTokenUrl(url)).toBe(token);
  });
});

describe('forwardBackoffMs', () => {
  it('doubles from 5 s up to 10 min, minus up to 20 % jitter', () => {
    expect([1, 2, 3, 4].map((n) => forwardBackoffMs(n, 0))).toEqual([5000, 10_000, 20_000, 40_000]);
    expect(forwardBackoffMs(1, 1)).toBe(4000);
    expect(forwardBackoffMs(30, 0)).toBe(600_000);
    expect(forwardBackoffMs(1000, 0.5)).toBe(540_000);
  });
});

describe('forwardContentType', () => {
  it("is the agent's own, exactly as sent", () => {
    expect(forwardContentType({ contentType: 'Application/x-compress-zlib', compression: 'zlib', format: 'xml' })).toBe(
      'Application/x-compress-zlib',
    );
    expect(forwardContentType({ contentType: 'application/json', compression: 'none', format: 'json' })).toBe(
      'application/json',
    );
  });

  it('says zlib when a redaction re-encoded a raw-deflate body as zlib, and is derived when none was sent', () => {
    expect(
      forwardContentType({ contentType: 'application/x-compress-deflate', compression: 'zlib', format: 'xml' }),
    ).toBe('application/x-compress-zlib');
    expect(forwardContentType({ contentType: null, compression: 'gzip', format: 'json' })).toBe(
      'application/x-compress-gzip',
    );
    expect(forwardContentType({ contentType: null, compression: 'none', format: 'json' })).toBe('application/json');
  });
});
