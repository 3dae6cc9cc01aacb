// Administrators step up with a security key; others may also use an
// authenticator app.
exports.onExecutePostLogin = async (event, api) => {
  const roles = (event.user.app_metadata && event.user.app_metadata.roles) || [];
  if (roles.includes('admin')) {
    api.authentication.challengeWith({ type: 'webauthn-roaming' });
    return;
  }
  api.authentication.challengeWithAny([{ type: 'otp' }, { type: 'webauthn-platform' }, { type: 'webauthn-roaming' }]);
};
