/**
 * The memory case of the bench: many concurrent uploads of a very large inventory (a chassis switch's is
 * ~20 MB decompressed), with the gateway's peak resident memory read from /proc (VmHWM) around the run.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ROOT } from './processes.js';

/** A real FusionInventory inventory grown to about `megabytes` MB by repeating its software list. */
export function bigInventory(megabytes: number, deviceid: string): Buffer {
  const fixture = JSON.parse(
    fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'fusioninventory-plain', '0002-post-inventory.json'), 'utf8'),
  ) as { decoded_text: string; classified: { deviceid: string } };
  const text = fixture.decoded_text.split(fixture.classified.deviceid).join(deviceid);
  const softwares = text.match(/<SOFTWARES>[\s\S]*?<\/SOFTWARES>\s*/g)!.join('');
  const copies = Math.max(1, Math.ceil((megabytes * 1024 * 1024) / softwares.length));
  const at = text.indexOf('<SOFTWARES>');
  return zlib.deflateSync(Buffer.from(text.slice(0, at) + softwares.repeat(copies) + text.slice(at), 'utf8'));
}

/** Peak and current resident memory of a process, in MB (Linux). */
export function residentMb(pid: number): { peak: number; now: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { peak: kb('VmHWM') / 1024, now: kb('VmRSS') / 1024 };
}
