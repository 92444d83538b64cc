/**
 * Decompression bombs shaped like inventories, for the bench and the security test: a ~100 KB zlib body
 * that inflates to tens of MB of valid JSON or XML — a software list whose entries carry a 2 KB comment
 * each (so it compresses ~700:1), under a deviceid of the caller's choosing.
 */
import zlib from 'node:zlib';

const MB = 1024 * 1024;
const COMMENT = 'a'.repeat(2048);

/** A GLPI Agent JSON inventory of about `megabytes` MB, zlib-compressed. */
export function jsonBomb(megabytes: number, deviceid: string): Buffer {
  const software = JSON.stringify({
    name: 'libreoffice-core',
    version: '1:7.4.7-1+deb12u3',
    publisher: 'Debian LibreOffice Maintainers',
    arch: 'amd64',
    comments: COMMENT,
  });
  const n = Math.ceil((megabytes * MB) / (software.length + 1));
  const head = `{"action":"inventory","deviceid":${JSON.stringify(deviceid)},"itemtype":"Computer","content":{"hardware":{"name":"bomb"},"versionclient":"GLPI-Agent_v1.12","softwares":[`;
  return deflate(head, `${software},`, n - 1, `${software}]}}`);
}

/** A FusionInventory XML inventory of about `megabytes` MB, zlib-compressed. */
export function xmlBomb(megabytes: number, deviceid: string): Buffer {
  const software = `<SOFTWARES><ARCH>amd64</ARCH><COMMENTS>${COMMENT}</COMMENTS><FROM>deb</FROM><NAME>libreoffice-core</NAME><VERSION>1:7.4.7-1+deb12u3</VERSION></SOFTWARES>`;
  const n = Math.ceil((megabytes * MB) / software.length);
  const head = `<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><CONTENT><HARDWARE><NAME>bomb</NAME></HARDWARE><VERSIONCLIENT>FusionInventory-Agent_v2.6</VERSIONCLIENT>`;
  return deflate(head, software, n, `</CONTENT><DEVICEID>${deviceid}</DEVICEID><QUERY>INVENTORY</QUERY></REQUEST>\n`);
}

/** zlib of head + unit × n + tail, without building the whole text at once. */
function deflate(head: string, unit: string, n: number, tail: string): Buffer {
  const per = Math.max(1, Math.floor(MB / unit.length));
  const block = Buffer.from(unit.repeat(per));
  const parts: Buffer[] = [Buffer.from(head)];
  for (let left = n; left > 0; left -= per) parts.push(left >= per ? block : Buffer.from(unit.repeat(left)));
  parts.push(Buffer.from(tail));
  return zlib.deflateSync(Buffer.concat(parts), { level: 6 });
}
