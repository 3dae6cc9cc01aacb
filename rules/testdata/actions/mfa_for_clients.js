// Require MFA for the applications listed (comma-separated) in the
// MFA_CLIENTS secret; never remember the browser for them.
exports.onExecutePostLogin = async (event, api) => {
  const listed = (event.secrets.MFA_CLIENTS || '').split(',').map((s) => s.trim()).filter(Boolean);
  if (listed.includes(event.client.client_id)) {
    api.multifactor.enable('any', { allowRememberBrowser: false });
  }
};
