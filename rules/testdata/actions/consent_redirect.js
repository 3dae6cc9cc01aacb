// Send users who have not accepted the terms to the consent page, with a
// signed token, and record the acceptance when they come back.
exports.onExecutePostLogin = async (event, api) => {
  if (event.user.app_metadata.terms_accepted) {
    return;
  }
  const token = api.redirect.encodeToken({
    secret: event.secrets.CONSENT_SECRET,
    expiresInSeconds: 300,
    payload: { email: event.user.email },
  });
  api.redirect.sendUserTo(event.secrets.CONSENT_URL, { query: { session_token: token } });
};

exports.onContinuePostLogin = async (event, api) => {
  const payload = api.redirect.validateToken({ secret: event.secrets.CONSENT_SECRET, tokenParameterName: 'consent_token' });
  if (payload.accepted !== true) {
    api.access.deny('The terms must be accepted to continue.');
    return;
  }
  api.user.setAppMetadata('terms_accepted', true);
};
