// @ts-check
// Signing in: the token is tried against GET /api/v1/me and kept for this tab only if it is accepted.
import { ApiError, getMe } from './api.js';
import { setSession } from './session.js';

/**
 * Signs in with an operator token; throws a readable error if the gateway does not accept it.
 * @param {string} token
 */
export async function signIn(token) {
  const me = await getMe(token).catch((err) => {
    throw err instanceof ApiError && err.status === 401
      ? new ApiError(401, 'This token was not accepted: it is unknown or revoked.')
      : err;
  });
  setSession({ token, name: me.name, role: me.role });
}
