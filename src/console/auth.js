// @ts-check
// Signing in: the token is tried against GET /api/v1/me (who, and which role) and kept for this tab only if
// it is accepted; GET /api/v1/meta brings the lists the server knows (device states, audit actions, roles).
import { ApiError, getMe, getMeta } from './api.js';
import { setSession } from './session.js';

/**
 * Signs in with an operator token; throws a readable error if the gateway does not accept it.
 * @param {string} token
 */
export async function signIn(token) {
  const [me, meta] = await Promise.all([getMe(token), getMeta(token)]).catch((err) => {
    throw err instanceof ApiError && err.status === 401
      ? new ApiError(401, 'This token was not accepted: it is unknown or revoked.')
      : err;
  });
  setSession({ token, name: me.name, role: me.role, meta });
}
