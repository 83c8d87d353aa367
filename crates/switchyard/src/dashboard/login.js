// The login form: keep the key in a cookie for this origin and reload. The gateway accepts
// the cookie for GET `/` and `/api/*` only (see `check_key` in server.rs).
'use strict';
document.getElementById('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const key = document.getElementById('key').value.trim();
  if (!key) return;
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = 'switchyard_key=' + encodeURIComponent(key) +
    '; Path=/; SameSite=Strict; Max-Age=2592000' + secure;
  location.reload();
});
