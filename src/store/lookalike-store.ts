/**
 * Look-alikes: for a page of devices, the other devices that share a serial, a UUID, a MAC or a name with
 * each of them — one query per page, each branch an index scan of its own (a UNION) (serial and uuid: 0001; macs (GIN) and
 * lower(name): 0010). Values to ignore (junk serials, UUIDs and MACs) are passed in by the caller.
 */
import type postgres from 'postgres';
import type { Queryable } from './db.js';

export interface LookalikeRow {
  /** the device of the page */
  forId: number;
  id: number;
  deviceid: string;
  state: string;
  name: string | null;
  /** what they have in common, in this order: serial, uuid, mac, name */
  shared: string[];
}

export interface Ignored {
  serials: string[];
  uuids: string[];
  macs: string[];
  names: string[];
}

/** At most this many look-alikes per device (the most recently seen first). */
export const LOOKALIKES_PER_DEVICE = 20;

/**
 * One way of looking alike, as its own index scan. The four are a UNION, not one OR'd condition: with OR
 * the planner walked the whole table in last_seen order for each device of the page (1.4 s for a page of
 * 50 at 100k devices, where few devices have look-alikes); as a UNION it is four index lookups (5 ms).
 */
function branch(sql: Queryable, cond: postgres.Fragment) {
  return sql`select id, deviceid, state, name, serial, uuid, macs, last_seen from devices where ${cond}`;
}

export async function findLookalikes(sql: Queryable, ids: number[], ignored: Ignored): Promise<LookalikeRow[]> {
  if (ids.length === 0) return [];
  return sql<LookalikeRow[]>`
    select p.id as "forId", x.id, x.deviceid, x.state, x.name, x.shared
    from devices p
    cross join lateral (
      select case when p.serial is not null and lower(p.serial) <> all(${ignored.serials}::text[]) then p.serial end as serial,
             case when p.uuid is not null and lower(p.uuid) <> all(${ignored.uuids}::text[]) then p.uuid end as uuid,
             array(select m from unnest(p.macs) m where m <> all(${ignored.macs}::text[])) as macs,
             case when btrim(coalesce(p.name, '')) <> '' and lower(p.name) <> all(${ignored.names}::text[]) then lower(p.name) end as name
    ) c
    cross join lateral (
      select d.id, d.deviceid, d.state, d.name,
             array_remove(array[
               case when d.serial = c.serial then 'serial' end,
               case when d.uuid = c.uuid then 'uuid' end,
               case when d.macs && c.macs then 'mac' end,
               case when lower(d.name) = c.name then 'name' end
             ]::text[], null) as shared
      from (${branch(sql, sql`serial = c.serial`)}
            union ${branch(sql, sql`uuid = c.uuid`)}
            union ${branch(sql, sql`cardinality(c.macs) > 0 and macs && c.macs`)}
            union ${branch(sql, sql`name is not null and name <> '' and lower(name) = c.name`)}) d
      where d.id <> p.id
      order by d.last_seen desc, d.id desc
      limit ${LOOKALIKES_PER_DEVICE}
    ) x
    where p.id = any(${ids}::bigint[])
    order by p.id, x.id`;
}
