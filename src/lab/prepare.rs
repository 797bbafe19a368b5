//! `lab up`, first half: build with the lab mapping and lay every host's
//! planned files, binaries and secrets out under the lab root.

use super::*;

/// The secret values of a lab: fixed passwords per kind, and (TLS on) a CA
/// per cluster with a certificate per host for the lab's own addresses, made
/// by the code of `secrets init` (`crate::certs`); keyed by the spec's references.
pub fn lab_secrets(
    fleet: &Fleet,
    m: &crate::plan::context::Mapping,
) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    let today = crate::certs::Day::from_unix(crate::load::unix_now());
    for c in &fleet.clusters {
        let s = &c.secrets;
        let kinds = [
            (&s.superuser_password, "lab-superuser-password"),
            (&s.replication_password, "lab-replication-password"),
            (&s.rewind_password, "lab-rewind-password"),
            (&s.restapi_password, "lab-restapi-password"),
            (&s.backup_cipher_pass, "lab-backup-cipher-pass"),
            (&s.etcd_root_password, "lab-etcd-root-password"),
            (&s.etcd_password, "lab-etcd-password"),
            (&s.haproxy_stats_password, "lab-haproxy-stats-password"),
        ];
        if let Some(ca_ref) = &s.tls_ca {
            let ca = crate::certs::new_ca(&c.name, today)?;
            for site in &c.sites {
                for h in site
                    .hosts
                    .iter()
                    .filter(|h| h.has(Role::Pg) || h.has(Role::Etcd))
                {
                    let mut names = crate::plan::secrets::tls_names(site, h, m);
                    // On loopback every peer connects from the lab's one source
                    // address, and etcd checks a peer certificate's addresses
                    // against the connection's source (etcd-io/etcd
                    // client/pkg/transport/listener_tls.go, `checkSAN` with the
                    // connection's `RemoteAddr`, unless --peer-skip-client-san-verification).
                    names.addresses.extend(m.source.iter().cloned());
                    let pem = crate::certs::host_cert(&c.name, &ca.key, &names, today)?;
                    let (cert, key) = crate::secrets::host_tls(ca_ref, &h.name);
                    out.insert(cert.label(), pem.cert.trim_end().to_string());
                    out.insert(key.label(), pem.key.trim_end().to_string());
                }
            }
            out.insert(ca_ref.label(), ca.cert.trim_end().to_string());
        }
        for (r, v) in kinds {
            if let Some(r) = r {
                out.entry(r.label()).or_insert_with(|| v.to_string());
            }
        }
        for s in &c.sites {
            for h in &s.hosts {
                for r in &h.config.pgbackrest.repos {
                    for (k, v) in [(&r.key, "lab-s3-key"), (&r.key_secret, "lab-s3-key-secret")] {
                        if let Some(k) = k {
                            out.entry(k.label()).or_insert_with(|| v.to_string());
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The default lab root of a cluster.
pub fn default_root(cluster: &str) -> PathBuf {
    PathBuf::from("/tmp/pgimg-lab").join(cluster)
}

pub(crate) fn pick_cluster<'a>(fleet: &'a Fleet, name: Option<&str>) -> Result<&'a Cluster, Error> {
    match name {
        Some(n) => fleet.clusters.iter().find(|c| c.name == n).ok_or_else(|| {
            fail(format!(
                "no cluster `{n}` in the spec; it has: {}",
                fleet
                    .clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
        None => match fleet.clusters.as_slice() {
            [c] => Ok(c),
            cs => Err(fail(format!(
                "the spec has {} clusters; name one: {}",
                cs.len(),
                cs.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf, Error> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .map_err(io("reading the current directory", p))?
            .join(p))
    }
}

/// The lab root a command works on: `--root`, else the default of the spec's cluster.
pub fn root_of(opts: &Options) -> Result<PathBuf, Error> {
    if let Some(r) = &opts.root {
        return absolute(r);
    }
    if let Some(c) = &opts.cluster {
        return Ok(default_root(c));
    }
    let source = crate::load::spec(&opts.spec)?;
    let v = validate(source)?;
    Ok(default_root(&pick_cluster(&v.fleet, None)?.name))
}

pub(crate) fn validate(source: crate::source::SourceFile) -> Result<crate::Validated, Error> {
    crate::validate(source.clone(), false).map_err(|d| {
        // Lines are shown with every plain value in a secret slot masked.
        let shown = crate::spec::redact::redacted(&source);
        let text: String = d
            .iter()
            .map(|x| crate::diag::render_human(x, Some(&shown)))
            .collect();
        fail(format!("the spec is invalid:\n{text}"))
    })
}

/// A previous lab at `root` may be replaced once nothing of it runs;
/// anything else there is left alone.
pub(crate) fn clear_old_root(root: &Path) -> Result<(), Error> {
    if !root.exists() {
        return Ok(());
    }
    if root.join(".lab").join("state.json").is_file() {
        let old = Lab::open(root)?;
        if old
            .records()
            .iter()
            .any(|p| procs::is_ours(p, &old.state.root))
        {
            return Err(fail(format!(
                "a lab is running at {}: `pgimg lab down` it first",
                root.display()
            )));
        }
        return std::fs::remove_dir_all(root).map_err(io("removing", root));
    }
    let empty = std::fs::read_dir(root)
        .map_err(io("reading", root))?
        .next()
        .is_none();
    if empty {
        Ok(())
    } else {
        Err(fail(format!(
            "{} exists and is not a lab root (no .lab/state.json): choose another --root",
            root.display()
        )))
    }
}

pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    std::fs::write(path, bytes).map_err(io("writing", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("setting the mode of", path))
}

impl Lab {
    /// Builds the spec with the lab mapping and lays each host of the
    /// cluster out under the lab root from its plan: directories and files
    /// with their planned modes, the programs where the plan puts them, the
    /// secrets and the cluster files.
    pub fn prepare(opts: &Options) -> Result<Lab, Error> {
        let t = Instant::now();
        let source = crate::load::spec(&opts.spec)?;
        let v = validate(source)?;
        let cluster = pick_cluster(&v.fleet, opts.cluster.as_deref())?;
        let root = match &opts.root {
            Some(r) => absolute(r)?,
            None => default_root(&cluster.name),
        };
        clear_old_root(&root)?;
        let first_pg = cluster
            .sites
            .iter()
            .flat_map(|s| s.with_role(Role::Pg))
            .next()
            .ok_or_else(|| fail(format!("cluster `{}` has no pg host", cluster.name)))?;
        let pg = &first_pg.config.postgresql;
        let (user, uid, gid) = lab_user(&pg.superuser)?;
        check_locale(&pg.locale)?;

        let root_s = root.to_string_lossy().into_owned();
        let m = mapping::lab_mapping(&v.fleet, &root_s, opts.net)?;
        let secrets = lab_secrets(&v.fleet, &m)?;
        let inputs = crate::BuildInputs {
            roles: match &opts.roles {
                Some(d) => crate::load::roles(d)?,
                None => crate::load::RoleTree::embedded(),
            },
            secrets: crate::load::SecretValues {
                values: secrets.clone(),
            },
            mapping: m.clone(),
            overlays: crate::load::overlays(
                &crate::load::spec_dir(&opts.spec).join(crate::load::OVERLAYS),
            )?,
        };
        let tree = crate::build(&v, &inputs)?;
        if !tree.missing_secrets.is_empty() {
            return Err(fail(format!(
                "the lab supplies a value for every secret reference of the spec, but the build lacks: {}",
                tree.missing_secrets.join(", ")
            )));
        }
        let defs = crate::plan::roles::RoleDefs::parse(&inputs.roles)?;
        let mut plans = BTreeMap::new();
        for s in &cluster.sites {
            for h in &s.hosts {
                let mut p = crate::plan::plan_host(&defs, &v.fleet, cluster, s, h, &m)?;
                // The same plan the build rendered, user files included.
                crate::plan::overlay::apply(&mut p, &inputs.overlays, cluster, s, h)?;
                plans.insert(h.name.clone(), p);
            }
        }
        let mut tools = Tools::new(pg.major);

        // State first: the mapped topology.
        let mut sites = Vec::new();
        for s in &cluster.sites {
            let mut hosts = Vec::new();
            for h in &s.hosts {
                let c = &h.config;
                let plan = &plans[&h.name];
                let mp = |p: &str| PathBuf::from(m.path(&h.name, p));
                // Ports as the roles open them (`role.yaml` `ports:`), by service.
                let port = |service: &str| {
                    plan.ports
                        .iter()
                        .find(|p| p.service == service)
                        .and_then(|p| p.port)
                };
                hosts.push(HostState {
                    name: h.name.clone(),
                    services: plan
                        .services
                        .iter()
                        .map(|svc| ServiceState {
                            name: svc.name.clone(),
                            exec: svc.exec.clone(),
                            environment_files: svc.environment_files.clone(),
                            environment: svc
                                .environment
                                .iter()
                                .filter_map(|e| e.split_once('='))
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                        })
                        .collect(),
                    member: h.member_name.clone(),
                    address: m.addr(&h.address),
                    localhost: m.localhost(&h.name),
                    etcd_client_port: port("etcd-client"),
                    etcd_peer_port: port("etcd-peer"),
                    ports: plan.ports.iter().filter_map(|p| p.port).collect(),
                    pg: h.has(Role::Pg).then(|| PgState {
                        port: port("postgresql").unwrap_or(c.postgresql.port),
                        restapi_port: port("patroni-rest").unwrap_or(c.patroni.restapi_port),
                        data_dir: mp(&c.postgresql.data_dir),
                        superuser: c.postgresql.superuser.clone(),
                        patroni_config: mp(paths::PATRONI_CONFIG),
                        pgbackrest_config: mp(paths::PGBACKREST_CONFIG),
                        socket_dir: mp(paths::SOCKET_DIR),
                        s3_repos: Vec::new(),
                    }),
                    haproxy: h.has(Role::Haproxy).then(|| HaproxyState {
                        write_port: port("haproxy-write").unwrap_or(c.haproxy.write_port),
                        read_port: port("haproxy-read").unwrap_or(c.haproxy.read_port),
                        stats_port: port("haproxy-stats").unwrap_or(c.haproxy.stats_port),
                    }),
                });
            }
            sites.push(SiteState {
                name: s.name.clone(),
                scope: s.scope.clone(),
                standby_of: s.standby_of.clone(),
                slot_name: s.slot_name.clone(),
                stanza: stanza(s),
                hosts,
            });
        }
        // Sources before the sites that follow them.
        sites.sort_by_key(|s| s.standby_of.is_some());
        let superuser_password = cluster
            .secrets
            .superuser_password
            .as_ref()
            .and_then(|r| secrets.get(&r.label()).cloned())
            .unwrap_or_default();
        // Resolve every program the plans name before anything is written.
        for plan in plans.values() {
            for tool in plan.binaries.values() {
                tools.get(tool)?;
            }
        }
        let mut lab = Lab {
            state: State {
                cluster: cluster.name.clone(),
                root: root.clone(),
                user,
                uid,
                gid,
                pg_bindir: tools.get("pg-bindir")?,
                tools_dir: tools.dirs(),
                superuser_password,
                sites,
            },
        };
        lab.check_ports_free()?;

        std::fs::create_dir_all(lab.dot().join("log")).map_err(io("creating", &root))?;
        let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
        for (host, plan) in &plans {
            for (path, p) in &plan.files {
                let target = lab.path(host, path);
                if p.producer == crate::plan::Producer::Directory {
                    std::fs::create_dir_all(&target).map_err(io("creating", &target))?;
                    dirs.push((target, p.mode));
                } else {
                    let rel = format!("hosts/{host}/rootfs{path}");
                    let art = tree
                        .files
                        .get(&rel)
                        .ok_or_else(|| fail(format!("{rel} missing from the build")))?;
                    write_file(&target, &art.bytes, p.mode)?;
                }
            }
            // The programs, where the plan says the packages put them.
            for (abs, tool) in &plan.binaries {
                let link = lab.path(host, abs);
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
                }
                std::os::unix::fs::symlink(tools.get(tool)?, &link)
                    .map_err(io("linking", &link))?;
            }
        }
        for (path, a) in &tree.files {
            if let Some(rest) = path.strip_prefix("secrets/") {
                if let Some((host, abs)) = rest.split_once('/')
                    && plans.contains_key(host)
                {
                    write_file(&lab.path(host, &format!("/{abs}")), &a.bytes, 0o600)?;
                }
            } else if let Some(rest) = path.strip_prefix(&format!("clusters/{}/", cluster.name)) {
                write_file(&root.join("cluster").join(rest), &a.bytes, a.mode)?;
            }
        }

        lab.share_repos(&plans)?;
        // Modes last, deepest first, so that a 0700 parent never blocks its children.
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
        for (d, mode) in &dirs {
            if !d.is_symlink() {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(*mode))
                    .map_err(io("setting the mode of", d))?;
            }
        }
        lab.chown_all()?;
        let state = serde_json::to_string_pretty(&lab.state).map_err(|e| fail(e.to_string()))?;
        write_file(&lab.dot().join("state.json"), state.as_bytes(), 0o644)?;
        say(format_args!(
            "lab {}: rendered {} hosts into {} as user {} in {}",
            lab.state.cluster,
            plans.len(),
            root.display(),
            lab.state.user,
            elapsed(t)
        ));
        Ok(lab)
    }

    /// Every posix repository is shared storage (an NFS mount on real
    /// hosts): each host's repository path becomes a link to one directory
    /// per repository path, so that every member archives into, and restores
    /// from, the same repository. S3 repositories become local directories
    /// too (see `start_patroni`). The repositories come from the plan.
    pub(crate) fn share_repos(
        &mut self,
        plans: &BTreeMap<String, crate::plan::HostPlan>,
    ) -> Result<(), Error> {
        let root = self.state.root.clone();
        for (host, plan) in plans {
            if !plan.context.host.is_pg {
                continue;
            }
            let mut s3 = Vec::new();
            for r in &plan.context.pgbackrest.repos {
                let n = r.n as u32;
                if r.s3 {
                    let bucket = r.bucket.clone().unwrap_or_default();
                    let dir =
                        PathBuf::from(format!("{}/shared/s3/{bucket}{}", root.display(), r.path));
                    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
                    s3.push((n, dir));
                    continue;
                }
                let prefix = self.host_root(host).to_string_lossy().into_owned();
                let Some(abs) = r.path.strip_prefix(&prefix) else {
                    continue;
                };
                let shared = PathBuf::from(format!("{}/shared{abs}", root.display()));
                std::fs::create_dir_all(&shared).map_err(io("creating", &shared))?;
                std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750))
                    .map_err(io("setting the mode of", &shared))?;
                let link = PathBuf::from(&r.path);
                if link.is_dir() && !link.is_symlink() {
                    std::fs::remove_dir(&link).map_err(io("replacing", &link))?;
                }
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
                }
                if !link.is_symlink() {
                    std::os::unix::fs::symlink(&shared, &link).map_err(io("linking", &link))?;
                }
            }
            // A DR site reads its source's S3 repository (a stanza section of
            // its own, numbered after the site's repositories): the lab gives
            // it the directory that stands in for that bucket on the source.
            if let Some(src) = &plan.context.daytwo.source_repo
                && src.repo.s3
                && let Some(bucket) = &src.repo.bucket
            {
                let dir = PathBuf::from(format!(
                    "{}/shared/s3/{bucket}{}",
                    root.display(),
                    src.repo.path
                ));
                std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
                s3.push((src.repo.n as u32, dir));
            }
            if let Some(pg) = self
                .state
                .sites
                .iter_mut()
                .flat_map(|s| s.hosts.iter_mut())
                .find(|h| &h.name == host)
                .and_then(|h| h.pg.as_mut())
            {
                pg.s3_repos = s3;
            }
        }
        Ok(())
    }

    pub(crate) fn chown_all(&self) -> Result<(), Error> {
        if effective_uid() != 0 {
            return Ok(());
        }
        for e in walkdir::WalkDir::new(&self.state.root) {
            let e = e.map_err(|e| fail(format!("walking the lab root: {e}")))?;
            std::os::unix::fs::lchown(e.path(), Some(self.state.uid), Some(self.state.gid))
                .map_err(io("changing the owner of", e.path()))?;
        }
        Ok(())
    }

    /// Every address and port the lab will bind must be free now.
    pub(crate) fn check_ports_free(&self) -> Result<(), Error> {
        let mut want: Vec<(String, u16)> = Vec::new();
        for h in self.state.sites.iter().flat_map(|s| s.hosts.iter()) {
            // Every port the host's roles open (the plan's, from `role.yaml`).
            for p in &h.ports {
                want.push((h.address.clone(), *p));
            }
            // etcd also listens on the host's own stand-in for 127.0.0.1.
            if let Some(c) = h.etcd_client_port {
                want.push((h.localhost.clone(), c));
            }
        }
        for (a, p) in want {
            let ip: std::net::IpAddr = a.parse().map_err(|_| fail(format!("bad address {a}")))?;
            if !ip.is_loopback() {
                return Err(fail(format!("{a} is not a loopback address")));
            }
            if std::net::TcpListener::bind((ip, p)).is_err() {
                return Err(fail(format!(
                    "{a}:{p} is already in use: another lab (`pgimg lab status`) or program holds it; pick another --net"
                )));
            }
        }
        Ok(())
    }
}
