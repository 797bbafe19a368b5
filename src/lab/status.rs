//! `lab status`: every site's members, like `patronictl list`.

use super::*;

impl Lab {
    /// `patronictl list`, site by site, from the REST API.
    pub fn status_text(&self) -> String {
        let mut out = format!(
            "lab {} at {} (daemons run as {})\n",
            self.state.cluster,
            self.state.root.display(),
            self.state.user
        );
        for s in &self.state.sites {
            let kind = match &s.standby_of {
                Some(src) => format!(", standby of {src}"),
                None => String::new(),
            };
            out.push_str(&format!("\nsite {} (scope {}{kind})\n", s.name, s.scope));
            out.push_str(&format!(
                "  etcd: {}\n",
                match self.etcd_health(s) {
                    Ok(()) => "healthy".to_string(),
                    Err(e) => format!("UNHEALTHY: {e}"),
                }
            ));
            if let Some(h) = s.haproxy() {
                let x = h.haproxy.as_ref().map(|x| (x.write_port, x.read_port));
                if let Some((w, r)) = x {
                    out.push_str(&format!(
                        "  haproxy: write {}:{w}, read {}:{r} ({})\n",
                        h.address,
                        h.address,
                        match self.haproxy_health(s) {
                            Ok(()) => "routing".to_string(),
                            Err(e) => e,
                        }
                    ));
                }
            }
            out.push_str(&format!(
                "  {:<12} {:<16} {:<15} {:<12} {:>3} {:>10}\n",
                "Member", "Host", "Role", "State", "TL", "Lag in MB"
            ));
            match self.members(s) {
                Ok(ms) => {
                    for m in ms {
                        let role = match m.role.as_str() {
                            "leader" => "Leader",
                            "standby_leader" => "Standby Leader",
                            "sync_standby" => "Sync Standby",
                            "quorum_standby" => "Quorum Standby",
                            "replica" => "Replica",
                            r => r,
                        };
                        out.push_str(&format!(
                            "  {:<12} {:<16} {:<15} {:<12} {:>3} {:>10}\n",
                            m.name,
                            m.host,
                            role,
                            m.state,
                            m.timeline.map(|t| t.to_string()).unwrap_or_default(),
                            m.lag
                                .map(|l| (l / 1_048_576).to_string())
                                .unwrap_or_default()
                        ));
                    }
                }
                Err(e) => out.push_str(&format!("  (no member answers: {e})\n")),
            }
        }
        out
    }
}
