//! Bounded waits on etcd `/health`, Patroni `/cluster` and HAProxy.

use super::*;

impl Lab {
    /// Waits (bounded) until a site has its leader, every other member
    /// streaming, and HAProxy routing to them.
    pub fn wait_site(&self, site: &str, timeout: Duration) -> Result<(), Error> {
        let s = self
            .site(site)
            .ok_or_else(|| fail(format!("no site {site}")))?;
        let leader = if s.is_dr() {
            "a standby leader"
        } else {
            "a leader"
        };
        let n = s.pg_hosts().count();
        self.wait(
            &format!(
                "site {}: {leader} and {} streaming replica(s)",
                s.name,
                n.saturating_sub(1)
            ),
            timeout,
            || self.site_health(s),
        )?;
        if s.haproxy().is_some() {
            self.wait(
                &format!("site {}: HAProxy routes writes and reads", s.name),
                Duration::from_secs(60),
                || self.haproxy_health(s),
            )?;
        }
        Ok(())
    }

    pub(crate) fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Result<T, String>,
    ) -> Result<T, Error> {
        let t = Instant::now();
        say(format_args!(
            "  waiting for {what} (up to {} s)",
            timeout.as_secs()
        ));
        loop {
            match f() {
                Ok(v) => {
                    say(format_args!("  ok: {what} after {}", elapsed(t)));
                    return Ok(v);
                }
                Err(e) if t.elapsed() >= timeout => {
                    return Err(fail(format!(
                        "timed out after {} s waiting for {what}: {e} (logs: {})",
                        timeout.as_secs(),
                        self.dot().join("log").display()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// The TLS files of a lab host (TLS on: its CA file exists), with the
    /// key the host's daemon of `key` reads.
    pub(crate) fn tls(&self, host: &str, key: &str) -> Option<http::Tls> {
        use crate::plan::context::paths;
        let ca = self.path(host, paths::TLS_CA);
        ca.exists().then(|| http::Tls {
            ca,
            cert: self.path(host, paths::TLS_CERT),
            key: self.path(host, key),
        })
    }

    pub fn etcd_health(&self, s: &SiteState) -> Result<(), String> {
        use crate::plan::context::paths;
        for h in &s.hosts {
            if let Some(p) = h.etcd_client_port {
                let tls = self.tls(&h.name, paths::TLS_ETCD_KEY);
                let (code, body) = http::get_with(&h.address, p, "/health", tls.as_ref(), None)?;
                if code != 200 || !body.contains("\"true\"") {
                    return Err(format!("{}: {code} {body}", h.name));
                }
            }
        }
        Ok(())
    }

    /// The members of a site, from the first Patroni that answers `GET /cluster`.
    pub fn members(&self, s: &SiteState) -> Result<Vec<Member>, String> {
        let mut last = String::from("no pg host");
        for h in s.pg_hosts() {
            let Some(pg) = &h.pg else { continue };
            let tls = self.tls(&h.name, crate::plan::context::paths::TLS_PG_KEY);
            match http::get_with(&h.address, pg.restapi_port, "/cluster", tls.as_ref(), None) {
                Ok((200, body)) => {
                    let v: Value =
                        serde_json::from_str(&body).map_err(|e| format!("{}: {e}", h.name))?;
                    let members = v["members"].as_array().cloned().unwrap_or_default();
                    return Ok(members
                        .iter()
                        .map(|m| Member {
                            name: m["name"].as_str().unwrap_or("").to_string(),
                            host: m["host"].as_str().unwrap_or("").to_string(),
                            role: m["role"].as_str().unwrap_or("").to_string(),
                            state: m["state"].as_str().unwrap_or("").to_string(),
                            timeline: m["timeline"].as_u64(),
                            lag: m["lag"].as_u64(),
                        })
                        .collect());
                }
                Ok((code, body)) => last = format!("{}: {code} {body}", h.name),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The member that leads a site (leader, or standby leader of a DR site).
    pub fn leader(&self, s: &SiteState) -> Result<Member, String> {
        let ms = self.members(s)?;
        ms.into_iter()
            .find(|m| m.role == "leader" || m.role == "standby_leader")
            .ok_or_else(|| format!("site {}: no leader", s.name))
    }

    pub fn site_health(&self, s: &SiteState) -> Result<String, String> {
        let ms = self.members(s)?;
        let want_role = if s.is_dr() {
            "standby_leader"
        } else {
            "leader"
        };
        let leaders: Vec<&Member> = ms.iter().filter(|m| m.role == want_role).collect();
        let describe = || {
            ms.iter()
                .map(|m| format!("{} {} {}", m.name, m.role, m.state))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if leaders.len() != 1 || !matches!(leaders[0].state.as_str(), "running" | "streaming") {
            return Err(format!("no single running {want_role}: [{}]", describe()));
        }
        let n = s.pg_hosts().count();
        if ms.len() != n {
            return Err(format!("{} of {n} members: [{}]", ms.len(), describe()));
        }
        if let Some(m) = ms
            .iter()
            .find(|m| m.role != want_role && m.state != "streaming")
        {
            return Err(format!("{} is {}: [{}]", m.name, m.state, describe()));
        }
        Ok(describe())
    }

    /// HAProxy's stats CSV: its write backend has a server up, and its read backend too when there are replicas.
    pub fn haproxy_health(&self, s: &SiteState) -> Result<(), String> {
        let h = s.haproxy().ok_or("no HAProxy")?;
        let x = h.haproxy.as_ref().ok_or("no HAProxy")?;
        // The stats page asks for the lab's stats password when the spec references one.
        let (code, body) = http::get_with(
            &h.address,
            x.stats_port,
            "/;csv",
            None,
            Some(&format!(
                "{}:lab-haproxy-stats-password",
                crate::plan::secrets::STATS_USER
            )),
        )?;
        if code != 200 {
            return Err(format!("stats: {code}"));
        }
        let up = |backend: &str| {
            body.lines().any(|l| {
                let f: Vec<&str> = l.split(',').collect();
                f.first() == Some(&backend)
                    && !matches!(f.get(1), Some(&"FRONTEND") | Some(&"BACKEND"))
                    && f.get(17).is_some_and(|st| st.starts_with("UP"))
            })
        };
        if !up("postgres_write") {
            return Err("no server up in postgres_write".into());
        }
        if s.pg_hosts().count() > 1 && !up("postgres_read") {
            return Err("no server up in postgres_read".into());
        }
        Ok(())
    }
}
