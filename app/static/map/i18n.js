// The page's words in Chinese (default) and English. Elements with data-i18n="key" get the text,
// data-i18n-placeholder / data-i18n-title their attribute; dynamic panels call t() when they draw.

const WORDS = {
  zh: {
    app_title: "气网 调度地图",
    map_unavailable: "地图无法显示",
    no_webgl: "此浏览器或电脑不支持 WebGL (或已关闭硬件加速), 地图需要它来绘制。请使用较新版本的 Chrome、Edge 或 Firefox, 并在浏览器设置中开启硬件加速。",
    style_failed: "地图样式无法加载, 请确认服务器正在运行后刷新页面。",
    map_error: "地图数据加载失败",
    browse_layers: "也可在 OGC API 网页中浏览图层数据:",
    lang_switch: "English",
    search_placeholder: "编号或地址…",
    search: "搜索",
    search_none: "未找到",
    tab_layers: "图层",
    tab_burst: "爆管",
    tab_radius: "周边",
    tab_alarms: "告警",
    tool_identify: "查询",
    tool_burst: "爆管分析",
    tool_radius: "周边查询",
    layers: "图层与图例",
    hint_identify: "点击要素查看属性。",
    hint_burst: "在地图上点击管线或位置进行爆管分析, 或输入管线编号。",
    hint_radius: "在地图上点击中心点。",
    pipe_code: "管线编号",
    run: "分析",
    running: "分析中…",
    burst_pipe: "爆管管线",
    valves_to_close: "需关闭阀门",
    failed: "失效",
    already_closed: "已关闭",
    second_ring: "第二道",
    zoom: "定位",
    isolated_pipes: "关断管段",
    dry_pipes: "停气管段",
    isolated_length: "关断长度",
    isolated_volume: "放散气量",
    affected_customers: "受影响用户",
    sensitive_sites: "敏感场所",
    none: "无",
    second_ring_title: "阀门失效后的第二道关阀",
    failed_valves: "失效阀门",
    added_valves: "新增关阀",
    added_isolated: "新增关断管段",
    added_dry: "新增停气管段",
    added_customers: "新增受影响用户",
    save_incident: "保存为预案",
    saved_as: "已保存: 事故方案",
    print: "打印报告",
    export_json: "导出 JSON",
    export_geojson: "导出 GeoJSON",
    route: "抢修路径",
    clear: "清除",
    crew_base: "抢修站",
    minutes: "分钟",
    length: "长度",
    roads: "途经道路",
    radius_m: "半径 (米)",
    radius_results: "周边要素",
    open_alarms: "未关闭报警",
    logout: "退出",
    updated: "更新于",
    step_acknowledge: "确认",
    step_dispatch: "派单",
    step_resolve: "处置完成",
    step_close: "关闭",
    still_active: "仍在报警, 恢复正常后才能关闭",
    step_done: "已记录",
    state_raised: "待确认",
    state_acknowledged: "已确认",
    state_dispatched: "已派单",
    state_resolved: "已处置",
    state_closed: "已关闭",
    cleared: "已恢复",
    overdue_hazards: "逾期未整改隐患",
    refresh: "刷新",
    due: "整改期限",
    found: "发现",
    raised: "报警时间",
    level: "等级",
    state: "状态",
    attributes: "属性",
    error: "错误",
    report_title: "爆管关阀分析报告",
    generated: "生成时间",
    in_outage_area: "停气范围内",
    in_impact_radius: "影响半径内",
    m: "米",
    m3: "立方米",
    count: "数量",
    legend_isolated: "关断管段",
    legend_dry: "停气管段",
    legend_outage: "停气范围",
    legend_second_ring: "第二道关断管段",
    legend_valve: "需关闭阀门",
    legend_route: "抢修路径",
    legend_radius: "查询范围",
    analysis_layers: "分析结果",
  },
  en: {
    app_title: "Qiwang dispatcher map",
    map_unavailable: "The map cannot be shown",
    no_webgl: "This browser or computer does not support WebGL (or hardware acceleration is turned off), which the map needs to draw. Use a recent Chrome, Edge or Firefox with hardware acceleration on in the browser's settings.",
    style_failed: "The map style could not be loaded. Make sure the server is running, then reload the page.",
    map_error: "Map data failed to load",
    browse_layers: "The layers can also be browsed in the OGC API pages:",
    lang_switch: "中文",
    search_placeholder: "Code or address…",
    search: "Search",
    search_none: "Nothing found",
    tab_layers: "Layers",
    tab_burst: "Burst",
    tab_radius: "Radius",
    tab_alarms: "Alarms",
    tool_identify: "Identify",
    tool_burst: "Burst analysis",
    tool_radius: "Radius query",
    layers: "Layers and legend",
    hint_identify: "Click a feature to see its attributes.",
    hint_burst: "Click a pipe or a place on the map to analyse a burst, or enter a pipe code.",
    hint_radius: "Click the centre on the map.",
    pipe_code: "Pipe code",
    run: "Analyse",
    running: "Running…",
    burst_pipe: "Burst pipe",
    valves_to_close: "Valves to close",
    failed: "failed",
    already_closed: "already closed",
    second_ring: "2nd ring",
    zoom: "Zoom",
    isolated_pipes: "Isolated pipes",
    dry_pipes: "Dry pipes",
    isolated_length: "Isolated length",
    isolated_volume: "Gas volume",
    affected_customers: "Customers cut off",
    sensitive_sites: "Sensitive sites",
    none: "none",
    second_ring_title: "Second ring after failed valves",
    failed_valves: "Failed valves",
    added_valves: "Added valves",
    added_isolated: "Added isolated pipes",
    added_dry: "Added dry pipes",
    added_customers: "Added customers",
    save_incident: "Save as planned incident",
    saved_as: "Saved: incident",
    print: "Print report",
    export_json: "Export JSON",
    export_geojson: "Export GeoJSON",
    route: "Crew route",
    clear: "Clear",
    crew_base: "Crew base",
    minutes: "min",
    length: "Length",
    roads: "Roads",
    radius_m: "Radius (m)",
    radius_results: "Features nearby",
    open_alarms: "Open alarms",
    logout: "Sign out",
    updated: "Updated",
    step_acknowledge: "Acknowledge",
    step_dispatch: "Dispatch",
    step_resolve: "Resolve",
    step_close: "Close",
    still_active: "Still active: it can be closed once the value has cleared",
    step_done: "Recorded",
    state_raised: "raised",
    state_acknowledged: "acknowledged",
    state_dispatched: "dispatched",
    state_resolved: "resolved",
    state_closed: "closed",
    cleared: "cleared",
    overdue_hazards: "Overdue hazards",
    refresh: "Refresh",
    due: "Due",
    found: "Found",
    raised: "Raised",
    level: "Level",
    state: "State",
    attributes: "Attributes",
    error: "Error",
    report_title: "Burst analysis report",
    generated: "Generated",
    in_outage_area: "in the outage area",
    in_impact_radius: "within the impact radius",
    m: "m",
    m3: "m³",
    count: "count",
    legend_isolated: "Isolated pipes",
    legend_dry: "Dry pipes",
    legend_outage: "Outage area",
    legend_second_ring: "Second-ring pipes",
    legend_valve: "Valves to close",
    legend_route: "Crew route",
    legend_radius: "Search radius",
    analysis_layers: "Analysis results",
  },
};

const listeners = [];
let current = "zh";

/** The word for `key` in the current language (the key itself when missing). */
export function t(key) {
  return WORDS[current][key] ?? WORDS.zh[key] ?? key;
}

export function language() {
  return current;
}

/** "管线 Pipes", "常开 可操作 Open, operable" → the part in the current language. */
export function bilingual(title) {
  if (!title) return "";
  const match = /^(.*?[^\x00-\x7f][^A-Za-z]*?)\s+([A-Za-z].*)$/.exec(title);
  if (!match) return title;
  return current === "zh" ? match[1].trim() : match[2].trim();
}

/** Fill every data-i18n element under `root`. */
export function translate(root = document) {
  root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  root.querySelectorAll("[data-i18n-title]").forEach((el) => { el.title = t(el.dataset.i18nTitle); });
}

/** Switch language, remember it, redraw static text and tell the panels. */
export function setLanguage(lang) {
  current = WORDS[lang] ? lang : "zh";
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  try { localStorage.setItem("qiwang.lang", current); } catch { /* private mode */ }
  translate();
  listeners.forEach((fn) => fn(current));
}

export function onLanguageChange(fn) {
  listeners.push(fn);
}

/** ?lang=en, then the remembered choice, then Chinese. */
export function initialLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked && WORDS[asked]) return asked;
  try { return localStorage.getItem("qiwang.lang") || "zh"; } catch { return "zh"; }
}
