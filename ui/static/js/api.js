// REST calls to the node. The access token (only needed off loopback) comes from ?token= once
// and stays in sessionStorage; the sysop token is typed into the Sysop tab.

const params = new URLSearchParams(location.search);
if (params.get("token")) {
  sessionStorage.setItem("mtor.token", params.get("token"));
  history.replaceState(null, "", location.pathname); // keep the token out of the address bar
}

export const accessToken = () => sessionStorage.getItem("mtor.token") || "";
export const sysopToken = () => sessionStorage.getItem("mtor.sysop") || "";
export const setSysopToken = (t) => sessionStorage.setItem("mtor.sysop", t);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, { method = "GET", body, sysop = false } = {}) {
  const headers = {};
  if (accessToken()) headers.Authorization = "Bearer " + accessToken();
  if (sysop) headers["X-Sysop-Token"] = sysopToken();
  if (body !== undefined) headers["Content-Type"] = "application/json"; // never a "simple" type: CSRF-safe
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(r.status, err.code || String(r.status), err.message || r.statusText);
  }
  return data;
}
