/** The dashboard's three assets, served by the admin endpoint from memory. */

export { DASHBOARD_HTML } from './page.js';
export { DASHBOARD_JS } from './script.js';
export { DASHBOARD_CSS } from './style.js';
