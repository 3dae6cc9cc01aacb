// Put the login's country in the ID token and remember it on the profile.
exports.onExecutePostLogin = async (event, api) => {
  const geo = event.request.geoip;
  if (!geo || !geo.countryCode) {
    return;
  }
  api.idToken.setCustomClaim('https://example.com/country', geo.countryCode);
  api.user.setUserMetadata('last_country', geo.countryCode);
};
