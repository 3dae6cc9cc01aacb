// The payroll application may only be used on weekdays (UTC).
exports.onExecutePostLogin = async (event, api) => {
  if (event.client.name !== 'Payroll') {
    return;
  }
  const day = new Date().getUTCDay();
  if (day === 0 || day === 6) {
    api.access.deny('Payroll is only available Monday to Friday.');
  }
};
