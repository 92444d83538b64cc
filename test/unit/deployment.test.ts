/**
 * The image runs the gateway the way `npm start` does, node flags included: the bench and load scripts
 * measure `npm start`'s command (scripts/lib/processes.ts startCommand), so an image that drifted from it
 * would run something nobody measured.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, startCommand } from '../../scripts/lib/processes.js';

describe('deployment', () => {
  it("the Dockerfile's CMD is npm start's command", () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile);
    expect(cmd, 'a CMD in exec form').not.toBeNull();
    expect(JSON.parse(cmd![1]!)).toEqual(startCommand());
  });

  it('caps the event loop young generation (the 20 MB-upload memory case of npm run bench)', () => {
    expect(startCommand()).toContain('--max-semi-space-size=2');
    expect(startCommand().slice(-2)).toEqual(['bin/agent-gate.js', 'serve']);
  });
});
