// @ts-check
// agent-gate console, the entry module (index.html loads it; it imports the rest, all native ES modules
// served by the gateway, no build step). It signs in with an operator token kept in this tab and calls the
// admin API (/api/v1) with it; the API enforces every role.
import { onSignedOut } from './api.js';
import { signIn } from './auth.js';
import { setRenderer } from './page.js';
import { route, showSignIn, signOut } from './router.js';
import { clearSession, storedToken } from './session.js';
import { errorBox } from './ui.js';

setRenderer(route);
onSignedOut(signOut);
window.addEventListener('hashchange', () => route());

async function start() {
  const token = storedToken();
  if (!token) return showSignIn();
  try {
    await signIn(token);
    route();
  } catch (err) {
    clearSession();
    showSignIn(errorBox(err));
  }
}

void start();
