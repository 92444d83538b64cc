// @ts-check
// The admin API's answers (/api/v1) as JSDoc types, for the console's type-check only: modules name them
// with `/** @import { Device } from './types.js' */`, a comment the browser never follows, so this file is
// never loaded. Dates arrive as ISO 8601 strings. States, roles and audit actions are plain strings here:
// the values are the server's (GET /api/v1/meta), never a copy kept in the console.

/**
 * GET /api/v1/me: the operator the token belongs to.
 * @typedef {object} Me
 * @property {string} name `operator:<name>`
 * @property {string} role one of {@link Meta.roles}
 */

/**
 * GET /api/v1/meta: the lists the server knows.
 * @typedef {object} Meta
 * @property {string[]} states every device state
 * @property {string[]} auditActions every action the audit log records
 * @property {string[]} roles the operator roles, least powerful first
 * @property {string[]} [securityEventTypes] every type of security event the server records
 */

/**
 * A device, as GET /api/v1/devices lists it.
 * @typedef {object} Device
 * @property {number} id
 * @property {string} deviceid
 * @property {string} state
 * @property {string | null} name
 * @property {string | null} serial
 * @property {string | null} uuid
 * @property {string | null} msn
 * @property {string | null} assetTag
 * @property {string | null} manufacturer
 * @property {string | null} model
 * @property {string[]} macs
 * @property {string[]} ips
 * @property {string | null} os
 * @property {string | null} tag the tag of its registration key or client (what policies and filters match, what GLPI gets)
 * @property {string | null} [claimedTag] the tag the agent sent: shown, never trusted
 * @property {boolean} [claimedTagMismatch] both tags set and different
 * @property {string | null} agentId
 * @property {string | null} agentVersion
 * @property {string} firstSeen
 * @property {string} lastSeen
 * @property {string | null} lastRemoteAddr
 * @property {string | null} lastInventoryAt
 * @property {Duplicate[]} [duplicates] devices that share a serial, UUID, MAC or name with this one
 * @property {{ product: string | null, version: string | null }} [agent] FusionInventory / GLPI Agent and version
 * @property {Credential | null} [credential] what the device is pinned to, and its latest request's key version
 * @property {string[]} [proxyChain] the proxies of its latest request ([]: direct)
 */

/**
 * A look-alike: another device with something in common.
 * @typedef {object} Duplicate
 * @property {number} id
 * @property {string} deviceid
 * @property {string[]} shared serial, uuid, mac and/or name
 * @property {string} state
 * @property {string | null} name
 */

/**
 * @typedef {object} Credential
 * @property {string | null} keyName
 * @property {number | null} keyVersion
 * @property {string | null} clientId
 * @property {string | null} certFingerprint
 * @property {string | null} certSubject
 * @property {string | null} authType
 */

/**
 * One section of an inventory (GET /api/v1/devices/:id/inventory).
 * @typedef {object} InventorySection
 * @property {string} key
 * @property {string} title
 * @property {number} count
 * @property {Record<string, string | number | boolean | null>[]} items
 * @property {boolean} truncated
 */

/**
 * @typedef {object} DeviceInventory
 * @property {number} id
 * @property {string} deviceid
 * @property {string} state
 * @property {{ fullSubmissionId: number | null, state: string | null, receivedAt: string | null, partialsMerged: number, updatedAt: string, format: string } | null} source
 * @property {InventorySection[]} sections
 */

/**
 * @typedef {object} FieldChange
 * @property {string} field
 * @property {unknown} before
 * @property {unknown} after
 */

/**
 * @typedef {object} ListChange
 * @property {Record<string, unknown>[]} added
 * @property {Record<string, unknown>[]} removed
 * @property {{ key: string, fields: FieldChange[] }[]} changed
 */

/**
 * GET /api/v1/devices/:id/changes.
 * @typedef {object} DeviceChanges
 * @property {string} basis previous | reference
 * @property {{ submissionId: number, receivedAt: string, state: string } | null} from
 * @property {{ submissionId: number, receivedAt: string, state: string } | null} to
 * @property {{ identity: FieldChange[], macs: { added: string[], removed: string[] }, interfaces: ListChange,
 *   disks: ListChange, volumes: ListChange, software: { added: Record<string, unknown>[],
 *   removed: Record<string, unknown>[], upgraded: { name: string | null, publisher: string | null,
 *   from: string | null, to: string | null }[] } } | null} changes
 */

/**
 * GET /api/v1/security-events.
 * @typedef {object} SecurityEvent
 * @property {number} id
 * @property {string} at
 * @property {string} kind
 * @property {string | null} remoteAddr
 * @property {string | null} deviceid
 * @property {string | null} credential
 * @property {Record<string, unknown> | null} details
 */

/**
 * The query of GET /api/v1/devices.
 * @typedef {object} DeviceQuery
 * @property {string} [state]
 * @property {string} [tag]
 * @property {string} [key]
 * @property {string} [subnet]
 * @property {string} [q]
 * @property {string} [firstSeenFrom]
 * @property {string} [firstSeenTo]
 * @property {number} [limit]
 * @property {number} [offset]
 * @property {string} [sort] lastSeen (the default), firstSeen, name, state, deviceid, serial, os, agent, address
 * @property {'asc' | 'desc'} [dir] default: desc for the times, asc for the rest
 */

/**
 * One state change in a device's history.
 * @typedef {object} Transition
 * @property {string} at
 * @property {string | null} from null for the device's first state
 * @property {string} to
 * @property {string} actor
 * @property {string | null} reason
 */

/**
 * What a device sent, counted per state and kind.
 * @typedef {object} SubmissionCount
 * @property {string} state
 * @property {string} kind
 * @property {number} n
 * @property {number} bytes
 */

/**
 * A source address of a device.
 * @typedef {object} Source
 * @property {string} remoteAddr
 * @property {number} requests
 * @property {string} lastSeen
 */

/**
 * The summary of a device's inventory (values as the agent sent them).
 * @typedef {object} InventorySummary
 * @property {string | null} os
 * @property {string | null} manufacturer
 * @property {string | null} model
 * @property {string | null} serial
 * @property {string | null} uuid
 * @property {number | string | null} memoryMb
 * @property {number | null} softwareCount
 * @property {number | null} networkCount
 * @property {string[]} sections
 * @property {boolean} [pending] the latest full inventory is still being summarised (identity columns shown)
 */

/**
 * A fingerprint in a conflict: deviceid, name, uuid, serial, macs (and the known device's id).
 * @typedef {{ [field: string]: unknown, id?: number }} Fingerprint
 */

/**
 * Why a device is in conflict: the fingerprint on record and the one that arrived.
 * @typedef {object} ConflictDetails
 * @property {string} [reason]
 * @property {string[]} [fields] the fields that caused the conflict
 * @property {Fingerprint} [known]
 * @property {Fingerprint} [incoming]
 */

/**
 * A recorded agent request (GET /api/v1/registrations, and a device's recent ones).
 * @typedef {object} Registration
 * @property {number} id
 * @property {string | null} deviceid
 * @property {number | null} deviceId
 * @property {string} kind
 * @property {string} format
 * @property {string} compression
 * @property {boolean} partial
 * @property {string} outcome
 * @property {number} status
 * @property {string} method
 * @property {string} path
 * @property {number} bodySize
 * @property {number} decodedSize
 * @property {string | null} remoteAddr
 * @property {string | null} userAgent
 * @property {string | null} agentId
 * @property {string | null} message
 * @property {string} receivedAt
 * @property {string | null} authType
 * @property {string | null} authUser
 * @property {string | null} keyName
 * @property {number | null} keyVersion
 * @property {string | null} clientId
 */

/**
 * What GET /api/v1/devices/:id adds to a device: everything a reviewer needs to decide on it.
 * @typedef {object} DeviceDetailExtra
 * @property {number | null} conflictWith
 * @property {ConflictDetails | null} conflictDetails
 * @property {string | null} stateReason
 * @property {string | null} keyName
 * @property {string | null} clientId
 * @property {string | null} assignedTag
 * @property {Device | null} conflictWithDevice
 * @property {InventorySummary | null} inventory
 * @property {Transition[]} history
 * @property {SubmissionCount[]} submissions
 * @property {Source[]} sources
 * @property {Registration[]} registrations
 * @property {ProxyChain[]} [proxies]
 */

/**
 * A chain of GLPI Agent proxies the device's messages came through.
 * @typedef {object} ProxyChain
 * @property {string[]} proxyChain
 * @property {number} requests
 * @property {string} firstSeen
 * @property {string} lastSeen
 */

/** @typedef {Device & DeviceDetailExtra} DeviceDetail */

/**
 * What a decision did to one device.
 * @typedef {object} DecisionResult
 * @property {number} id
 * @property {string} deviceid
 * @property {string} from
 * @property {string} to
 * @property {boolean} changed
 * @property {number} releasedSubmissions
 */

/** @typedef {'approve' | 'reject'} Decision */

/**
 * POST /api/v1/devices/approve|reject with a filter and no confirmCount: what would be decided.
 * @typedef {object} FilterDryRun
 * @property {true} dryRun
 * @property {number} count
 * @property {{ id: number, deviceid: string, name: string | null, state: string }[]} devices
 */

/**
 * POST /api/v1/devices/approve|reject with a filter and its confirmCount.
 * @typedef {object} FilterDecided
 * @property {false} dryRun
 * @property {number} count
 * @property {DecisionResult[]} results
 */

/**
 * A version of a registration key, its secret masked.
 * @typedef {object} KeyVersion
 * @property {number} version
 * @property {string} secret
 * @property {string} createdAt
 * @property {string | null} expiresAt
 * @property {boolean} valid
 */

/**
 * A registration key (GET /api/v1/keys).
 * @typedef {object} Key
 * @property {string} name
 * @property {boolean} active
 * @property {string | null} expiresAt
 * @property {number} maxDevices 0 = unlimited
 * @property {number} devicesUsed
 * @property {string | null} tag
 * @property {string | null} comment
 * @property {string} createdBy
 * @property {string} createdAt
 * @property {string | null} [frozenAt] frozen for auto-approval (a new-device spike, or an admin)
 * @property {string | null} [frozenReason]
 * @property {KeyVersion[]} versions
 */

/**
 * POST /api/v1/keys: the key and its secret, shown once.
 * @typedef {object} CreatedKey
 * @property {Key} key
 * @property {string} secret
 */

/**
 * POST /api/v1/keys/:name/rotate: the new version's secret, shown once.
 * @typedef {object} RotatedKey
 * @property {Key} key
 * @property {string} secret
 * @property {number} version
 * @property {string} previousExpiresAt
 */

/**
 * Who used one version of a key, from where, how often and when last.
 * @typedef {object} KeyUsageRow
 * @property {number} version
 * @property {string} prefix
 * @property {string | null} expiresAt
 * @property {string | null} deviceid
 * @property {number | null} deviceId
 * @property {string | null} remoteAddr
 * @property {number} requests
 * @property {string} lastUsed
 */

/**
 * GET /api/v1/keys/:name/usage.
 * @typedef {object} KeyUsage
 * @property {Key} key
 * @property {KeyUsageRow[]} usage
 * @property {string | null} nextCursor the next page (`?cursor=`), null on the last one
 */

/**
 * An agent client credential (GET /api/v1/clients), its secret masked.
 * @typedef {object} Client
 * @property {string} clientId
 * @property {string} name
 * @property {string} secret
 * @property {string | null} deviceid
 * @property {string | null} comment
 * @property {string} createdBy
 * @property {string} createdAt
 * @property {string | null} revokedAt
 * @property {string | null} lastUsedAt
 */

/**
 * POST /api/v1/clients: the credential, its secret shown once.
 * @typedef {object} CreatedClient
 * @property {string} clientId
 * @property {string} clientSecret
 * @property {string} name
 * @property {string | null} deviceid
 */

/**
 * An operator (GET /api/v1/operators), its token masked.
 * @typedef {object} Operator
 * @property {string} name
 * @property {string} role
 * @property {string} token
 * @property {string} createdBy
 * @property {string} createdAt
 * @property {string | null} revokedAt
 * @property {string | null} lastUsedAt
 */

/**
 * An audit log entry (GET /api/v1/audit).
 * @typedef {object} AuditEntry
 * @property {number} id
 * @property {string} at
 * @property {string} actor
 * @property {string} action one of {@link Meta.auditActions}
 * @property {string} targetType
 * @property {string | null} targetId
 * @property {string | null} remoteAddr
 * @property {unknown} before
 * @property {unknown} after
 * @property {string | null} reason
 */

/**
 * A saved auto-approval rule (GET /api/v1/policies), tried in `position` order: the first that matches decides.
 * @typedef {object} PolicyRule
 * @property {number} id
 * @property {number} position
 * @property {'approve' | 'quarantine' | 'reject'} action
 * @property {Record<string, string>} match key, tag, cidr, allowlist, manufacturer, model, agent ({}: every device)
 * @property {string | null} comment
 * @property {string} createdBy
 * @property {string} createdAt
 */

/**
 * GET /api/v1/policies: the rules and the allowlists they may name.
 * @typedef {object} Policies
 * @property {PolicyRule[]} rules
 * @property {{ name: string, kind: string, entries: number }[]} allowlists
 */

/**
 * What a rule set would decide for one device (POST /api/v1/policies/test).
 * @typedef {object} PolicyJudgement
 * @property {number} id
 * @property {string} deviceid
 * @property {string | null} name
 * @property {string} state
 * @property {'approve' | 'quarantine' | 'reject'} decision
 * @property {number | null} ruleId the rule that decided (negative: the n-th proposed rule)
 * @property {boolean} frozen a rule said approve, but the key is frozen for auto-approval
 */

/**
 * POST /api/v1/policies/test: the dry run, for the quarantine queue and for the devices of the last days.
 * @typedef {object} PolicyTest
 * @property {number} rules
 * @property {string[]} warnings
 * @property {{ devices: number, wouldApprove: PolicyJudgement[], wouldReject: PolicyJudgement[], wouldStay: number }} queue
 * @property {{ days: number, devices: number, decisions: PolicyJudgement[] }} recent
 */

/**
 * POST /api/v1/policies: the saved rule and what applying the rules to the queue changed.
 * @typedef {object} PolicyAdded
 * @property {PolicyRule} rule
 * @property {{ id: number, deviceid: string, to: string, ruleId: number }[]} applied
 */

/**
 * An item of the GLPI forwarding outbox (GET /api/v1/outbox), newest first.
 * @typedef {object} OutboxItem
 * @property {number} id
 * @property {number} submissionId
 * @property {number} deviceId
 * @property {string} deviceid
 * @property {string} kind
 * @property {boolean} partial
 * @property {number} bytes
 * @property {'pending' | 'in_flight' | 'delivered' | 'dead'} state
 * @property {number} attempts
 * @property {string | null} nextAttemptAt
 * @property {number | null} lastStatus GLPI's last HTTP status (null: no answer)
 * @property {string | null} lastError
 * @property {string | null} lastResponse the start of GLPI's last answer
 * @property {string} createdAt
 * @property {string | null} deliveredAt
 */

/**
 * POST /api/v1/operators: the operator and its token, shown once.
 * @typedef {object} CreatedOperator
 * @property {string} name
 * @property {string} role
 * @property {string} token
 */

export {};
