// Loaded before the Dash renderer: defines the clientside function the theme toggle uses
// (ClientsideFunction::named("ui", "theme")) and leaves a mark the browser test checks.
window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.ui = {
    theme: function (nClicks) {
        return (nClicks || 0) % 2 === 1 ? 'theme-dark' : 'theme-light';
    },
};
window.tesseraMultiPageAssetLoaded = true;
