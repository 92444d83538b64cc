/**
 * The chosen secrets the tests start gateways with, written once. BOOTSTRAP_SECRET and BOOTSTRAP_ADMIN_TOKEN
 * must carry at least 128 bits (src/config.ts secretStrengthBits), so these are fixed strings with the
 * shape of generated ones (a prefix and 41 base64url characters): strong enough to be accepted, constant so a
 * failing test can be replayed by hand. They protect nothing: never reuse them outside tests.
 */

/** BOOTSTRAP_SECRET of gateways started by the tests (the registration key "default"). */
export const TEST_BOOTSTRAP_SECRET = 'agk_tEst-Bootstrap_9fK2xQm7VwL4pR8sZc3YhN6jD1';

/** BOOTSTRAP_ADMIN_TOKEN of gateways started by the tests (the operator "admin"). */
export const TEST_ADMIN_TOKEN = 'ago_tEst-AdminToken_5bH8wE2kT9nM4qX7rJ1cV6zL3';

/** A second strong token, for a request that must carry a well-formed token that names no operator. */
export const TEST_UNKNOWN_TOKEN = 'ago_tEst-NoSuchOp_2mW7kQ9xB4vN8rL1cT6hZ3fJ5sD';

/** BOOTSTRAP_SECRET of the fault tests' gateways. */
export const TEST_FAULT_SECRET = 'agk_tEst-FaultKey_7pL2vR9mX4cN8kQ1wT6bZ3hJ5sF';
