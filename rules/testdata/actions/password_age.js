// Passwords older than 90 days must be changed before signing in.
const MAX_AGE_DAYS = 90;

exports.onExecutePostLogin = async (event, api) => {
  const changed = event.user.last_password_reset || event.user.created_at;
  if (!changed) {
    return;
  }
  const days = (Date.now() - Date.parse(changed)) / (24 * 3600 * 1000);
  if (days > MAX_AGE_DAYS) {
    api.access.deny('Your password has expired; please reset it.');
  }
};
