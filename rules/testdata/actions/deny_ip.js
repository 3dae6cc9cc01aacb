// Turn away logins from the blocked addresses.
const BLOCKED = ['198.51.100.23', '198.51.100.24'];

exports.onExecutePostLogin = async (event, api) => {
  if (BLOCKED.indexOf(event.request.ip) !== -1) {
    api.access.deny(`Access from ${event.request.ip} is not allowed.`);
  }
};
