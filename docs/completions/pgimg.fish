# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pgimg_global_optspecs
    string join \n q/quiet v/verbose color= h/help V/version
end

function __fish_pgimg_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pgimg_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pgimg_using_subcommand
    set -l cmd (__fish_pgimg_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pgimg -n "__fish_pgimg_needs_command" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_needs_command" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_needs_command" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_needs_command" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_needs_command" -s V -l version -d 'Print version'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "init" -d 'Write a commented starter spec that validates and builds as it is'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "validate" -d 'Check a spec against the schema and the semantic rules'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "build" -d 'Render every artifact of a spec into an output directory'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "secrets" -d 'Create or check the secrets a spec references'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "diff" -d 'Compare two builds and say what each change means for a running cluster'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "verify" -d 'Re-hash every artifact of an output (or of its HTTP copy) against its manifest.json'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "show" -d 'Print the fleet as a table: cluster, site, host, address, roles, ports, boot'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "resolve" -d 'Print one host\'s effective settings, each with the layer and line that set it'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "graph" -d 'Draw the fleet: sites, hosts, roles, HAProxy routes and DR replication'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "manual" -d 'Print shell completions or the manual page, generated from this command line'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "lab" -d 'Start a spec\'s cluster on this machine from its rendered artifacts, on loopback addresses'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "schema" -d 'Print the JSON schema of the spec language'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "explain" -d 'Explain a diagnostic code, or list them all'
complete -c pgimg -n "__fish_pgimg_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgimg -n "__fish_pgimg_using_subcommand init" -l hosts -d 'PostgreSQL hosts per site (each also an etcd member while their count is odd)' -r
complete -c pgimg -n "__fish_pgimg_using_subcommand init" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand init" -l dr -d 'Add a DR site: a standby cluster following the primary site'
complete -c pgimg -n "__fish_pgimg_using_subcommand init" -l cloud -d 'Hosts start on a cloud (EC2) from their cloud-init user-data (the default)'
complete -c pgimg -n "__fish_pgimg_using_subcommand init" -l bare-metal -d 'Hosts install over PXE from a kickstart: each gets a MAC and disks'
complete -c pgimg -n "__fish_pgimg_using_subcommand init" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand init" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand init" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand validate" -l format -d 'How diagnostics are printed' -r -f -a "human\t'rustc-style text on stderr'
json\t'One JSON object per diagnostic, one per line, on stdout'"
complete -c pgimg -n "__fish_pgimg_using_subcommand validate" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand validate" -l strict -d 'Treat warnings as errors'
complete -c pgimg -n "__fish_pgimg_using_subcommand validate" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand validate" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -s o -l out -d 'Output directory (replaced as a whole when the build succeeds)' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -l roles -d 'Use the role templates in this directory instead of the built-in ones' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -l format -d '`human`: diagnostics on stderr, a summary on stdout; `json`: one JSON document on stdout and nothing else' -r -f -a "human\t'rustc-style text on stderr'
json\t'One JSON object per diagnostic, one per line, on stdout'"
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -l secrets-env -d 'Read `env:` secrets that are not in the environment from this `NAME=value` file' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -l strict -d 'Treat warnings as errors; implies `--require-secrets`'
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -l require-secrets -d 'Fail (exit 1) when a secret the spec references is missing, empty or unreadable'
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -l check -d 'Build in memory and compare with the existing output instead of writing: exit 1 with the summary when they differ'
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -l embed-secrets -d 'Also write each host\'s kickstart or user-data with its secrets embedded, under secrets/<host>/ only (mode 0600), for each host whose every secret is supplied'
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand build" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and not __fish_seen_subcommand_from init check help" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and not __fish_seen_subcommand_from init check help" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and not __fish_seen_subcommand_from init check help" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and not __fish_seen_subcommand_from init check help" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and not __fish_seen_subcommand_from init check help" -f -a "init" -d 'Write strong random values for every referenced secret that is missing (`file:` references as files of mode 0600, `env:` ones into an environment file); never overwrites'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and not __fish_seen_subcommand_from init check help" -f -a "check" -d 'List every referenced secret and whether it is there; exit 1 when one is missing or unusable'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and not __fish_seen_subcommand_from init check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from init" -l secrets-env -d 'The `NAME=value` file for `env:` references (default: `secrets.env` next to the spec for `init`; none for `check`)' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from init" -l format -d 'How diagnostics are printed' -r -f -a "human\t'rustc-style text on stderr'
json\t'One JSON object per diagnostic, one per line, on stdout'"
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from init" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from init" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from init" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from check" -l secrets-env -d 'The `NAME=value` file for `env:` references (default: `secrets.env` next to the spec for `init`; none for `check`)' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from check" -l format -d 'How diagnostics are printed' -r -f -a "human\t'rustc-style text on stderr'
json\t'One JSON object per diagnostic, one per line, on stdout'"
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from check" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from check" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from help" -f -a "init" -d 'Write strong random values for every referenced secret that is missing (`file:` references as files of mode 0600, `env:` ones into an environment file); never overwrites'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from help" -f -a "check" -d 'List every referenced secret and whether it is there; exit 1 when one is missing or unusable'
complete -c pgimg -n "__fish_pgimg_using_subcommand secrets; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgimg -n "__fish_pgimg_using_subcommand diff" -l base -d 'The git revision of OLD when only NEW is given (default: the merge base of HEAD and the main branch)' -r
complete -c pgimg -n "__fish_pgimg_using_subcommand diff" -l format -r -f -a "text\t'Text for a terminal'
markdown\t'A pull-request comment: summary table, actions, collapsible per-host diffs'
json\t'One JSON document, for tools'"
complete -c pgimg -n "__fish_pgimg_using_subcommand diff" -l roles -d 'Use the role templates in this directory for both sides instead of the built-in ones' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand diff" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand diff" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand diff" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pgimg -n "__fish_pgimg_using_subcommand verify" -l url -d 'Check the artifacts as served under this plain http:// base URL (such as `repos.artifacts`)' -r
complete -c pgimg -n "__fish_pgimg_using_subcommand verify" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand verify" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand verify" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand verify" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand show" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand show" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand show" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand show" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand resolve" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand resolve" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand resolve" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand resolve" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand graph" -l format -r -f -a "svg\t'A picture, laid out by pgimg itself'
mermaid\t'A Mermaid flowchart (renders on GitHub and GitLab)'
dot\t'Graphviz DOT'"
complete -c pgimg -n "__fish_pgimg_using_subcommand graph" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand graph" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand graph" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand graph" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pgimg -n "__fish_pgimg_using_subcommand manual" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand manual" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand manual" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand manual" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and not __fish_seen_subcommand_from up status down help" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and not __fish_seen_subcommand_from up status down help" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and not __fish_seen_subcommand_from up status down help" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and not __fish_seen_subcommand_from up status down help" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and not __fish_seen_subcommand_from up status down help" -f -a "up" -d 'Render with the lab mapping, start every etcd, Patroni and HAProxy, wait until healthy'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and not __fish_seen_subcommand_from up status down help" -f -a "status" -d 'Show the members of every site, like `patronictl list`'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and not __fish_seen_subcommand_from up status down help" -f -a "down" -d 'Stop exactly the processes `up` started, then remove the lab root'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and not __fish_seen_subcommand_from up status down help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from up" -l root -d 'Lab root: every host\'s files go under `<root>/<host>` (default `/tmp/pgimg-lab/<cluster>`)' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from up" -l net -d 'Second octet of the lab\'s loopback addresses, `127.<net>.<site>.<host>`' -r
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from up" -l roles -d 'Use the role templates in this directory instead of the built-in ones' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from up" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from up" -l boot -d 'Boot mode: every host a systemd-nspawn container with systemd as PID 1, installed by its own kickstart or user-data, on 198.18.0.0/15 (as root)'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from up" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from up" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from status" -l root -d 'Lab root: every host\'s files go under `<root>/<host>` (default `/tmp/pgimg-lab/<cluster>`)' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from status" -l net -d 'Second octet of the lab\'s loopback addresses, `127.<net>.<site>.<host>`' -r
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from status" -l roles -d 'Use the role templates in this directory instead of the built-in ones' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from status" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from status" -l boot -d 'Boot mode: every host a systemd-nspawn container with systemd as PID 1, installed by its own kickstart or user-data, on 198.18.0.0/15 (as root)'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from down" -l root -d 'Lab root: every host\'s files go under `<root>/<host>` (default `/tmp/pgimg-lab/<cluster>`)' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from down" -l net -d 'Second octet of the lab\'s loopback addresses, `127.<net>.<site>.<host>`' -r
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from down" -l roles -d 'Use the role templates in this directory instead of the built-in ones' -r -F
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from down" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from down" -l boot -d 'Boot mode: every host a systemd-nspawn container with systemd as PID 1, installed by its own kickstart or user-data, on 198.18.0.0/15 (as root)'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from down" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from down" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "up" -d 'Render with the lab mapping, start every etcd, Patroni and HAProxy, wait until healthy'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show the members of every site, like `patronictl list`'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "down" -d 'Stop exactly the processes `up` started, then remove the lab root'
complete -c pgimg -n "__fish_pgimg_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgimg -n "__fish_pgimg_using_subcommand schema" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand schema" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand schema" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand schema" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand explain" -l color -d 'When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgimg -n "__fish_pgimg_using_subcommand explain" -s q -l quiet -d 'Print only diagnostics and errors: no summary, no per-host lines, no progress'
complete -c pgimg -n "__fish_pgimg_using_subcommand explain" -s v -l verbose -d 'Print more: `build` lists every artifact of each host'
complete -c pgimg -n "__fish_pgimg_using_subcommand explain" -s h -l help -d 'Print help'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "init" -d 'Write a commented starter spec that validates and builds as it is'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "validate" -d 'Check a spec against the schema and the semantic rules'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "build" -d 'Render every artifact of a spec into an output directory'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "secrets" -d 'Create or check the secrets a spec references'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "diff" -d 'Compare two builds and say what each change means for a running cluster'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "verify" -d 'Re-hash every artifact of an output (or of its HTTP copy) against its manifest.json'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "show" -d 'Print the fleet as a table: cluster, site, host, address, roles, ports, boot'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "resolve" -d 'Print one host\'s effective settings, each with the layer and line that set it'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "graph" -d 'Draw the fleet: sites, hosts, roles, HAProxy routes and DR replication'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "manual" -d 'Print shell completions or the manual page, generated from this command line'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "lab" -d 'Start a spec\'s cluster on this machine from its rendered artifacts, on loopback addresses'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "schema" -d 'Print the JSON schema of the spec language'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "explain" -d 'Explain a diagnostic code, or list them all'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and not __fish_seen_subcommand_from init validate build secrets diff verify show resolve graph manual lab schema explain help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and __fish_seen_subcommand_from secrets" -f -a "init" -d 'Write strong random values for every referenced secret that is missing (`file:` references as files of mode 0600, `env:` ones into an environment file); never overwrites'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and __fish_seen_subcommand_from secrets" -f -a "check" -d 'List every referenced secret and whether it is there; exit 1 when one is missing or unusable'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "up" -d 'Render with the lab mapping, start every etcd, Patroni and HAProxy, wait until healthy'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "status" -d 'Show the members of every site, like `patronictl list`'
complete -c pgimg -n "__fish_pgimg_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "down" -d 'Stop exactly the processes `up` started, then remove the lab root'
