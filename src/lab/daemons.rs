//! Starting and stopping the daemons a host's units would run, as the lab
//! user, each recorded (pid and start time) so `down` stops exactly those.

use super::*;

impl Lab {
    /// A command that runs as the lab user, with the lab's tools on PATH.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let mut path: Vec<PathBuf> = vec![self.state.pg_bindir.clone()];
        path.extend(self.state.tools_dir.iter().cloned());
        path.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from));
        let path = std::env::join_paths(path).unwrap_or_default();
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.dot())
            .env("LANG", "C.UTF-8")
            .current_dir(&self.state.root)
            .stdin(Stdio::null());
        if effective_uid() != self.state.uid {
            cmd.uid(self.state.uid).gid(self.state.gid);
        }
        cmd
    }

    /// Starts a daemon as the lab user, its output in `.lab/log/`, and records it.
    pub fn spawn(
        &self,
        host: &str,
        service: &str,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<Proc, Error> {
        let log_path = self.log_file(host, service);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io("opening", &log_path))?;
        let log2 = log.try_clone().map_err(io("opening", &log_path))?;
        let mut cmd = self.command(&argv[0]);
        cmd.args(&argv[1..])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        if Path::new(&self.host_root(host)).is_dir() {
            cmd.current_dir(self.host_root(host));
        }
        let child = cmd
            .spawn()
            .map_err(|e| fail(format!("starting {service} of {host} ({}): {e}", argv[0])))?;
        let pid = child.id();
        let start = procs::start_time(pid).unwrap_or(0);
        let p = Proc {
            host: host.to_string(),
            service: service.to_string(),
            pid,
            start,
        };
        procs::append_record(&self.procs_file(), &p)
            .map_err(io("recording", &self.procs_file()))?;
        Ok(p)
    }

    /// Starts a service of a host the way systemd runs its unit: the
    /// planned `ExecStart`, `EnvironmentFile=`s read now, `Environment=`.
    fn start_service(
        &self,
        host: &str,
        service: &str,
        mut env: Vec<(String, String)>,
    ) -> Result<Proc, Error> {
        let h = self
            .host(host)
            .ok_or_else(|| fail(format!("no host {host} in this lab")))?;
        let svc = h
            .services
            .iter()
            .find(|s| s.name == service)
            .ok_or_else(|| fail(format!("host {host} runs no {service}")))?;
        for f in &svc.environment_files {
            let (optional, file) = match f.strip_prefix('-') {
                Some(f) => (true, Path::new(f)),
                None => (false, Path::new(f.as_str())),
            };
            if optional && !file.exists() {
                continue;
            }
            env.extend(env_file(file)?);
        }
        env.extend(svc.environment.iter().cloned());
        self.spawn(host, service, &svc.exec, &env)
    }

    pub(crate) fn start_etcd(&self, host: &str) -> Result<Proc, Error> {
        let home = self.host_root(host).display().to_string();
        self.start_service(host, "etcd", vec![("HOME".to_string(), home)])
    }

    /// Starts the Patroni of a pg host the way its rendered unit does.
    pub fn start_patroni(&self, host: &str) -> Result<Proc, Error> {
        let mut env = vec![(
            "HOME".to_string(),
            self.path(host, paths::POSTGRES_HOME).display().to_string(),
        )];
        // A lab never contacts S3 (nor the instance metadata service): in
        // pgBackRest's environment, which overrides its config file, each S3
        // repository becomes a local directory shared by the lab's hosts.
        if let Some(h) = self.host(host) {
            for (n, dir) in h.pg.iter().flat_map(|p| p.s3_repos.iter()) {
                env.push((format!("PGBACKREST_REPO{n}_TYPE"), "posix".to_string()));
                env.push((
                    format!("PGBACKREST_REPO{n}_PATH"),
                    dir.display().to_string(),
                ));
            }
        }
        self.start_service(host, "patroni", env)
    }

    pub(crate) fn start_haproxy(&self, host: &str) -> Result<Proc, Error> {
        self.start_service(host, "haproxy", Vec::new())
    }

    /// Starts every etcd, then site by site (sources first) every Patroni and
    /// HAProxy, waiting (bounded) for each step to be healthy.
    pub fn start(&self) -> Result<(), Error> {
        let t = Instant::now();
        self.start_etcd_all()?;
        for s in &self.state.sites {
            self.start_site(&s.name)?;
            self.wait_site(&s.name, SITE_TIMEOUT)?;
        }
        say(format_args!(
            "lab {}: healthy after {}",
            self.state.cluster,
            elapsed(t)
        ));
        Ok(())
    }

    pub fn start_etcd_all(&self) -> Result<(), Error> {
        for h in self.state.sites.iter().flat_map(|s| s.hosts.iter()) {
            if h.etcd_client_port.is_some() {
                self.start_etcd(&h.name)?;
            }
        }
        for s in &self.state.sites {
            self.wait(
                &format!("etcd of site {}: every member healthy", s.name),
                ETCD_TIMEOUT,
                || self.etcd_health(s),
            )?;
        }
        self.enable_etcd_auth()
    }

    /// Runs each site's rendered `etcd-auth` (planned on its first etcd
    /// member when etcd authentication is on) as `etcd-auth.service` would:
    /// with its environment file, once etcd is healthy. The script is
    /// idempotent and bounded (its waits, etcdctl's timeouts).
    fn enable_etcd_auth(&self) -> Result<(), Error> {
        for h in self.state.sites.iter().flat_map(|s| s.hosts.iter()) {
            let script = self.path(&h.name, &format!("{}/etcd-auth", paths::LIBEXEC));
            if !script.exists() {
                continue;
            }
            let env = env_file(&self.path(&h.name, paths::ETCD_AUTH_ENV))?;
            let out = self
                .command(&script)
                .envs(env)
                .env("PGIMG_ETCD_AUTH_ATTEMPTS", "12")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .map_err(io("running", &script))?;
            if !out.status.success() {
                return Err(fail(format!(
                    "{}: etcd-auth failed: {}",
                    h.name,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            say(format_args!("{}: etcd authentication on", h.name));
        }
        Ok(())
    }

    /// Starts the Patroni members and the HAProxy of a site.
    pub fn start_site(&self, site: &str) -> Result<(), Error> {
        let s = self
            .site(site)
            .ok_or_else(|| fail(format!("no site {site}")))?;
        for h in s.pg_hosts() {
            self.start_patroni(&h.name)?;
        }
        if let Some(h) = s.haproxy() {
            self.start_haproxy(&h.name)?;
        }
        let s3: BTreeSet<(u32, &PathBuf)> = s
            .pg_hosts()
            .flat_map(|h| h.pg.iter().flat_map(|p| p.s3_repos.iter()))
            .map(|(n, d)| (*n, d))
            .collect();
        for (n, dir) in s3 {
            say(format_args!(
                "note: site {site}: repo{n} is S3, which a lab never contacts: Patroni's environment (PGBACKREST_REPO{n}_TYPE=posix, _PATH) makes it the local directory {}; the rendered files are unchanged, so pgBackRest run by hand without those variables cannot reach the bucket",
                dir.display()
            ));
        }
        Ok(())
    }

    /// The pid of the postmaster of a pg host, from its postmaster.pid, if it runs.
    pub fn postmaster_pid(&self, host: &str) -> Option<u32> {
        let pg = self.host(host)?.pg.as_ref()?;
        let text = std::fs::read_to_string(pg.data_dir.join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        (procs::alive(pid) && procs::cmdline(pid).contains(&*self.state.root.to_string_lossy()))
            .then_some(pid)
    }

    /// The running recorded process of `service` on `host`.
    pub fn running(&self, host: &str, service: &str) -> Option<Proc> {
        self.records()
            .into_iter()
            .rev()
            .find(|p| p.host == host && p.service == service && procs::is_ours(p, &self.state.root))
    }

    /// Sends `sig` to a process of this lab (checked against /proc first).
    pub fn signal(&self, pid: u32, sig: &str) -> Result<(), Error> {
        let start = procs::start_time(pid).unwrap_or(0);
        let p = Proc {
            host: String::new(),
            service: String::new(),
            pid,
            start,
        };
        if !procs::is_ours(&p, &self.state.root) {
            return Err(fail(format!("pid {pid} is not a process of this lab")));
        }
        procs::signal(pid, sig).map_err(fail)
    }

    /// Stops a process of this lab: `sig`, a bounded wait, then SIGKILL.
    pub fn stop_pid(&self, pid: u32, sig: &str) -> Result<(), Error> {
        let start = procs::start_time(pid).unwrap_or(0);
        self.signal(pid, sig)?;
        let left = procs::stop(&[(pid, start)], sig, STOP_GRACE);
        if left.is_empty() {
            Ok(())
        } else {
            Err(fail(format!("pid {pid} survived SIGKILL")))
        }
    }

    /// Stops exactly what this lab started, then removes the lab root.
    pub fn down(&self) -> Result<(), Error> {
        let t = Instant::now();
        let root = self.state.root.clone();
        let recs = self.records();
        let ours = |service: &str| -> Vec<(u32, u64)> {
            recs.iter()
                .filter(|p| p.service == service && procs::is_ours(p, &root))
                .map(|p| (p.pid, p.start))
                .collect()
        };
        let mut survivors = Vec::new();
        survivors.extend(procs::stop(&ours("haproxy"), "TERM", STOP_GRACE));
        // Patroni stops its PostgreSQL on SIGTERM.
        survivors.extend(procs::stop(&ours("patroni"), "TERM", STOP_GRACE));
        let others: Vec<(u32, u64)> = recs
            .iter()
            .filter(|p| !matches!(p.service.as_str(), "haproxy" | "patroni" | "etcd"))
            .filter(|p| procs::is_ours(p, &root))
            .map(|p| (p.pid, p.start))
            .collect();
        survivors.extend(procs::stop(&others, "INT", STOP_GRACE));
        // A postmaster whose Patroni was killed outlives it.
        let postmasters: Vec<(u32, u64)> = self
            .state
            .sites
            .iter()
            .flat_map(|s| s.pg_hosts())
            .filter_map(|h| self.postmaster_pid(&h.name))
            .filter_map(|pid| procs::start_time(pid).map(|s| (pid, s)))
            .collect();
        survivors.extend(procs::stop(&postmasters, "INT", STOP_GRACE));
        // etcd members stopping together each wait to hand their leadership
        // to another; their data goes with the lab root, so the wait is short.
        survivors.extend(procs::stop(&ours("etcd"), "TERM", Duration::from_secs(3)));
        // What those started and left behind (PostgreSQL backends of a killed
        // postmaster, a backup a callback started): the lab user's processes
        // whose command line names this lab root, and nothing else.
        let rest = procs::under_root(self.state.uid, &root);
        survivors.extend(procs::stop(&rest, "TERM", Duration::from_secs(10)));
        if !survivors.is_empty() {
            return Err(fail(format!(
                "processes {survivors:?} survived SIGKILL; the lab root {} is left in place",
                root.display()
            )));
        }
        if root.join(".lab").join("state.json").is_file() {
            std::fs::remove_dir_all(&root).map_err(io("removing", &root))?;
            // The default root's parent goes too once no other lab uses it.
            if let Some(parent) = root.parent().filter(|p| p.ends_with("pgimg-lab")) {
                let _ = std::fs::remove_dir(parent);
            }
        }
        say(format_args!(
            "lab {}: stopped {} process(es), removed {} in {}",
            self.state.cluster,
            recs.len(),
            root.display(),
            elapsed(t)
        ));
        Ok(())
    }
}
