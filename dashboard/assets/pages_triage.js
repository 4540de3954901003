/* Cell renderers of the events and alerts tables (dash-ag-grid custom components).
   VwLink: the cell's text as a link to the row's `<field>_href` (names stay text: React escapes them).
   VwSilence: a "Silence this" button that hands the row's fingerprint to the grid's cellRendererData. */
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

dagcomponentfuncs.VwLink = function (props) {
    var href = props.data ? props.data[props.colDef.field + "_href"] : null;
    var text = props.value == null ? "" : String(props.value);
    if (!href || !text) {
        return React.createElement("span", null, text);
    }
    return React.createElement("a", {href: href, className: "vw-cell-link", title: "open " + text + " around this time"}, text);
};

dagcomponentfuncs.VwSilence = function (props) {
    return React.createElement("button", {
        className: "button small vw-silence-this",
        onClick: function () { props.setData(props.data.fingerprint); },
    }, "Silence this…");
};
