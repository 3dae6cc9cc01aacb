// Ask for a second factor unless this session already passed one.
exports.onExecutePostLogin = async (event, api) => {
  const methods = (event.authentication && event.authentication.methods) || [];
  if (methods.some((m) => m.name === 'mfa')) {
    return;
  }
  api.multifactor.enable('any');
};
