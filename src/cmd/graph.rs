//! `pgimg graph`: the fleet as a picture — clusters, sites, hosts with their
//! roles, HAProxy's routes and each DR site's replication link — as SVG
//! (laid out here, no external program), Mermaid or Graphviz DOT.
//!
//! The layout is a fixed grid, so the same spec always gives the same bytes:
//! clusters stacked top to bottom, a cluster's sites left to right, in a site
//! the HAProxy hosts above the others.

use std::fmt::Write as _;

use crate::cli::GraphFormat;
use crate::model::{Fleet, Host};
use crate::spec::v1::Role;

struct Node {
    id: String,
    lines: [String; 3],
    role: Role,
}

struct SiteBox {
    id: String,
    title: String,
    dr: bool,
    /// HAProxy hosts (drawn on top) and the others.
    balancers: Vec<Node>,
    members: Vec<Node>,
    /// `writes :5000 -> leader, reads :5001 -> replicas`, when the site has an HAProxy.
    route_label: Option<String>,
}

struct ClusterBox {
    id: String,
    title: String,
    sites: Vec<SiteBox>,
}

enum Target {
    Node(String),
    /// A site as a whole (a DR site's standby leader is whichever member Patroni elects).
    Site {
        site: String,
        first_node: String,
    },
}

struct Edge {
    from: String,
    to: Target,
    label: String,
}

struct Graph {
    clusters: Vec<ClusterBox>,
    edges: Vec<Edge>,
}

fn node(id: String, h: &Host) -> Node {
    let roles: Vec<String> = h
        .roles
        .iter()
        .map(|r| match serde_json::to_value(r) {
            Ok(serde_json::Value::String(s)) => s,
            _ => String::new(),
        })
        .collect();
    let role = if h.has(Role::Haproxy) {
        Role::Haproxy
    } else if h.has(Role::Pg) {
        Role::Pg
    } else {
        Role::Etcd
    };
    Node {
        id,
        lines: [h.name.clone(), h.address.clone(), roles.join(", ")],
        role,
    }
}

fn model(fleet: &Fleet) -> Graph {
    let mut clusters = Vec::new();
    let mut edges = Vec::new();
    for (ci, c) in fleet.clusters.iter().enumerate() {
        let mut sites = Vec::new();
        for (si, s) in c.sites.iter().enumerate() {
            let hid = |hi: usize| format!("h{ci}_{si}_{hi}");
            let mut balancers = Vec::new();
            let mut members = Vec::new();
            for (hi, h) in s.hosts.iter().enumerate() {
                let n = node(hid(hi), h);
                if h.has(Role::Haproxy) {
                    balancers.push(n);
                } else {
                    members.push(n);
                }
            }
            let hap = &s.config().haproxy;
            let route_label = (!balancers.is_empty()).then(|| {
                format!(
                    "writes :{} -> leader, reads :{} -> replicas",
                    hap.write_port, hap.read_port
                )
            });
            for (li, lb) in s
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| h.has(Role::Haproxy))
            {
                for (pi, _) in s.hosts.iter().enumerate().filter(|(_, h)| h.has(Role::Pg)) {
                    if pi != li {
                        edges.push(Edge {
                            from: hid(li),
                            to: Target::Node(hid(pi)),
                            label: format!(
                                ":{} rw, :{} ro",
                                lb.config.haproxy.write_port, lb.config.haproxy.read_port
                            ),
                        });
                    }
                }
            }
            if let Some(src) = c.source_of(s) {
                let src_index = c.sites.iter().position(|x| x.name == src.name).unwrap_or(0);
                let (endpoint, port) =
                    crate::plan::context::source_endpoint(src, &Default::default());
                let from = src
                    .hosts
                    .iter()
                    .position(|h| h.has(Role::Haproxy))
                    .or_else(|| src.hosts.iter().position(|h| h.has(Role::Pg)))
                    .unwrap_or(0);
                let first = s.hosts.iter().position(|h| h.has(Role::Pg)).unwrap_or(0);
                edges.push(Edge {
                    from: format!("h{ci}_{src_index}_{from}"),
                    to: Target::Site {
                        site: format!("s{ci}_{si}"),
                        first_node: hid(first),
                    },
                    label: format!(
                        "replication from {}, slot {}",
                        host_port(&endpoint, port),
                        s.slot_name
                    ),
                });
            }
            let title = match &s.standby_of {
                Some(src) => format!("site {} (DR of {}, scope {})", s.name, src, s.scope),
                None => format!("site {} (scope {})", s.name, s.scope),
            };
            sites.push(SiteBox {
                id: format!("s{ci}_{si}"),
                title,
                dr: s.is_dr(),
                balancers,
                members,
                route_label,
            });
        }
        clusters.push(ClusterBox {
            id: format!("c{ci}"),
            title: format!("cluster {}", c.name),
            sites,
        });
    }
    Graph { clusters, edges }
}

/// `addr:port`, with IPv6 addresses bracketed; a list of hosts gets the port once.
fn host_port(endpoint: &str, port: u16) -> String {
    if endpoint.contains(':') && !endpoint.contains(',') {
        format!("[{endpoint}]:{port}")
    } else {
        format!("{endpoint}:{port}")
    }
}

/// The picture of a fleet in one of the formats.
pub(crate) fn render(fleet: &Fleet, format: GraphFormat) -> String {
    let g = model(fleet);
    match format {
        GraphFormat::Dot => dot(&g),
        GraphFormat::Mermaid => mermaid(&g),
        GraphFormat::Svg => svg(&g),
    }
}

fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn dot(g: &Graph) -> String {
    let mut o = String::from(
        "digraph pgimg {\n  graph [compound=true, fontname=\"monospace\", fontsize=12, rankdir=TB];\n  node [shape=box, style=\"rounded,filled\", fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9];\n",
    );
    for c in &g.clusters {
        let _ = writeln!(o, "  subgraph cluster_{} {{", c.id);
        let _ = writeln!(o, "    label=\"{}\";", quoted(&c.title));
        for s in &c.sites {
            let _ = writeln!(o, "    subgraph cluster_{} {{", s.id);
            let _ = writeln!(o, "      label=\"{}\";", quoted(&s.title));
            if s.dr {
                o.push_str("      style=dashed;\n");
            }
            for n in s.balancers.iter().chain(&s.members) {
                let _ = writeln!(
                    o,
                    "      {} [label=\"{}\", fillcolor=\"{}\"];",
                    n.id,
                    quoted(&n.lines.join("\\n")),
                    fill(n.role)
                );
            }
            o.push_str("    }\n");
        }
        o.push_str("  }\n");
    }
    for e in &g.edges {
        match &e.to {
            Target::Node(to) => {
                let _ = writeln!(o, "  {} -> {to} [label=\"{}\"];", e.from, quoted(&e.label));
            }
            Target::Site { site, first_node } => {
                let _ = writeln!(
                    o,
                    "  {} -> {first_node} [lhead=cluster_{site}, style=dashed, color=\"{RED}\", label=\"{}\"];",
                    e.from,
                    quoted(&e.label)
                );
            }
        }
    }
    o.push_str("}\n");
    o
}

fn mermaid(g: &Graph) -> String {
    let text = |s: &str| s.replace('"', "#quot;");
    let mut o = String::from("flowchart TB\n");
    for c in &g.clusters {
        let _ = writeln!(o, "  subgraph {}[\"{}\"]", c.id, text(&c.title));
        for s in &c.sites {
            let _ = writeln!(o, "    subgraph {}[\"{}\"]", s.id, text(&s.title));
            for n in s.balancers.iter().chain(&s.members) {
                let _ = writeln!(o, "      {}[\"{}\"]", n.id, text(&n.lines.join("<br/>")));
            }
            o.push_str("    end\n");
        }
        o.push_str("  end\n");
    }
    for e in &g.edges {
        let (arrow, to) = match &e.to {
            Target::Node(n) => ("-->", n),
            Target::Site { site, .. } => ("-.->", site),
        };
        let _ = writeln!(o, "  {} {arrow}|\"{}\"| {to}", e.from, text(&e.label));
    }
    o
}

const RED: &str = "#cf222e";
const BLUE: &str = "#0969da";

fn fill(role: Role) -> &'static str {
    match role {
        Role::Haproxy => "#ddf4ff",
        Role::Pg => "#dafbe1",
        _ => "#fff8c5",
    }
}

/// Width of one character of the 12px monospace font, rounded up so text
/// never overflows its box whatever monospace font the viewer picks.
const CHAR_W: i64 = 8;
const LINE_H: i64 = 16;
const PAD: i64 = 10;
const HOST_H: i64 = 3 * LINE_H + 2 * PAD;
const HOST_GAP: i64 = 24;
const ROW_GAP: i64 = 64;
const SITE_PAD: i64 = 20;
const SITE_HEADER: i64 = 30;
const SITE_GAP: i64 = 48;
const CLUSTER_PAD: i64 = 20;
const CLUSTER_HEADER: i64 = 32;
const LANE: i64 = 22;
const MARGIN: i64 = 20;

fn chars(s: &str) -> i64 {
    s.chars().count() as i64
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Clone, Copy)]
struct Rect {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
}

impl Rect {
    fn cx(&self) -> i64 {
        self.x + self.w / 2
    }
}

fn svg(g: &Graph) -> String {
    use std::collections::BTreeMap;
    let mut nodes: BTreeMap<&str, Rect> = BTreeMap::new();
    let mut sites: BTreeMap<&str, Rect> = BTreeMap::new();
    let mut body = String::new();
    let mut labels = String::new();
    let mut y = MARGIN;
    let mut width = 0;
    for c in &g.clusters {
        // Replication links of this cluster run in lanes above its sites.
        let lanes = g
            .edges
            .iter()
            .filter(|e| match &e.to {
                Target::Site { site, .. } => c.sites.iter().any(|s| &s.id == site),
                _ => false,
            })
            .count() as i64;
        // Room below the last lane for the arrow into the DR site.
        let sites_top = y + CLUSTER_HEADER + lanes * LANE + if lanes > 0 { 12 } else { 0 };
        let mut x = MARGIN + CLUSTER_PAD;
        let mut cluster_bottom = sites_top;
        let mut site_rects = Vec::new();
        for s in &c.sites {
            let hosts = s.balancers.iter().chain(&s.members);
            let host_w = hosts
                .flat_map(|n| n.lines.iter())
                .map(|l| chars(l) * CHAR_W + 2 * PAD)
                .max()
                .unwrap_or(0)
                .max(120);
            let row_w = |n: usize| n as i64 * host_w + (n as i64 - 1).max(0) * HOST_GAP;
            let rows: Vec<&Vec<Node>> = [&s.balancers, &s.members]
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect();
            let inner = rows
                .iter()
                .map(|r| row_w(r.len()))
                .chain(s.route_label.iter().map(|l| chars(l) * CHAR_W + 2 * PAD))
                .chain([chars(&s.title) * CHAR_W])
                .max()
                .unwrap_or(0);
            let w = inner + 2 * SITE_PAD;
            let h = SITE_HEADER
                + SITE_PAD
                + rows.len() as i64 * HOST_H
                + (rows.len() as i64 - 1).max(0) * ROW_GAP
                + SITE_PAD;
            let rect = Rect {
                x,
                y: sites_top,
                w,
                h,
            };
            let mut row_y = sites_top + SITE_HEADER + SITE_PAD;
            for row in &rows {
                let mut hx = x + SITE_PAD + (inner - row_w(row.len())) / 2;
                for n in row.iter() {
                    nodes.insert(
                        &n.id,
                        Rect {
                            x: hx,
                            y: row_y,
                            w: host_w,
                            h: HOST_H,
                        },
                    );
                    hx += host_w + HOST_GAP;
                }
                row_y += HOST_H + ROW_GAP;
            }
            if let (Some(label), 2) = (&s.route_label, rows.len()) {
                let ly = sites_top + SITE_HEADER + SITE_PAD + HOST_H + ROW_GAP / 2;
                text_on_white(&mut labels, rect.cx(), ly, label, BLUE);
            }
            sites.insert(&s.id, rect);
            site_rects.push((s, rect));
            cluster_bottom = cluster_bottom.max(sites_top + h);
            x += w + SITE_GAP;
        }
        let cluster_w = x - SITE_GAP + CLUSTER_PAD - MARGIN;
        let cluster_h = cluster_bottom + CLUSTER_PAD - y;
        let _ = writeln!(
            body,
            "<rect x=\"{MARGIN}\" y=\"{y}\" width=\"{cluster_w}\" height=\"{cluster_h}\" rx=\"8\" fill=\"#f6f8fa\" stroke=\"#57606a\"/>"
        );
        let _ = writeln!(
            body,
            "<text x=\"{}\" y=\"{}\" font-weight=\"bold\" font-size=\"14\">{}</text>",
            MARGIN + CLUSTER_PAD,
            y + 22,
            esc(&c.title)
        );
        for (s, r) in site_rects {
            let dash = if s.dr {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let _ = writeln!(
                body,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"#ffffff\" stroke=\"#8c959f\"{dash}/>",
                r.x, r.y, r.w, r.h
            );
            // Above the replication lines, which pass behind it.
            let _ = writeln!(
                labels,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"18\" fill=\"#ffffff\"/>",
                r.x + SITE_PAD - 4,
                r.y + 6,
                chars(&s.title) * CHAR_W + 8
            );
            let _ = writeln!(
                labels,
                "<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>",
                r.x + SITE_PAD,
                r.y + 20,
                esc(&s.title)
            );
        }
        // Lanes: the first replication link of the cluster runs highest.
        let mut lane = 0;
        for e in &g.edges {
            let Target::Site { site, .. } = &e.to else {
                continue;
            };
            if !c.sites.iter().any(|s| &s.id == site) {
                continue;
            }
            let (Some(from), Some(to)) = (nodes.get(e.from.as_str()), sites.get(site.as_str()))
            else {
                continue;
            };
            let lane_y = y + CLUSTER_HEADER + lane * LANE + LANE / 2;
            lane += 1;
            let _ = writeln!(
                body,
                "<path d=\"M{} {} V{lane_y} H{} V{}\" fill=\"none\" stroke=\"{RED}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\" marker-end=\"url(#red-arrow)\"/>",
                from.cx(),
                from.y,
                to.cx(),
                to.y
            );
            text_on_white(
                &mut labels,
                (from.cx() + to.cx()) / 2,
                lane_y,
                &e.label,
                RED,
            );
        }
        width = width.max(MARGIN + cluster_w + MARGIN);
        y += cluster_h + MARGIN;
    }
    for e in &g.edges {
        if let Target::Node(to) = &e.to
            && let (Some(a), Some(b)) = (nodes.get(e.from.as_str()), nodes.get(to.as_str()))
        {
            let _ = writeln!(
                body,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{BLUE}\" stroke-width=\"1.2\" marker-end=\"url(#blue-arrow)\"/>",
                a.cx(),
                a.y + a.h,
                b.cx(),
                b.y
            );
        }
    }
    for c in &g.clusters {
        for s in &c.sites {
            for n in s.balancers.iter().chain(&s.members) {
                let r = nodes[n.id.as_str()];
                let _ = writeln!(
                    body,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"4\" fill=\"{}\" stroke=\"#57606a\"/>",
                    r.x,
                    r.y,
                    r.w,
                    r.h,
                    fill(n.role)
                );
                for (i, line) in n.lines.iter().enumerate() {
                    let weight = if i == 0 { " font-weight=\"bold\"" } else { "" };
                    let _ = writeln!(
                        body,
                        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\"{weight}>{}</text>",
                        r.cx(),
                        r.y + PAD + LINE_H * (i as i64 + 1) - 4,
                        esc(line)
                    );
                }
            }
        }
    }
    let height = y;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"monospace\" font-size=\"12\">"
    );
    for (id, colour) in [("blue-arrow", BLUE), ("red-arrow", RED)] {
        let _ = writeln!(
            o,
            "<defs><marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0 0 L10 5 L0 10 z\" fill=\"{colour}\"/></marker></defs>"
        );
    }
    let _ = writeln!(
        o,
        "<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    o.push_str(&body);
    o.push_str(&labels);
    o.push_str("</svg>\n");
    o
}

/// A label centred on (x, y) over a white backing, so lines behind it stay readable.
fn text_on_white(out: &mut String, x: i64, y: i64, text: &str, colour: &str) {
    let w = chars(text) * CHAR_W + 8;
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"16\" fill=\"#ffffff\" opacity=\"0.9\"/>",
        x - w / 2,
        y - 8
    );
    let _ = writeln!(
        out,
        "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"{colour}\">{}</text>",
        y + 4,
        esc(text)
    );
}
