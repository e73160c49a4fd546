function __azl-shell_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __azl-shell_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __azl-shell_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __azl-shell_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __azl-shell_parse_tokens -S
    set -l unparsed_tokens (__azl-shell_tokens -pc)
    switch $unparsed_tokens[1]
    case 'azl-shell'
        __azl-shell_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'run'
            __azl-shell_parse_subcommand -r 1 'root=' 'v/verbose' 'q/quiet' 'platform=' 'tls-verify=' 'creds=' 'json' 'image=' 'e/env=+' 'volume=+' 'w/workdir=' 'u/user=' 'hostname=' 'network=' 'read-only' 'kernel=' 'cap-add=+' 'cap-drop=+' 'matrix=' 'jobs=' 'logs=' 'abi-report=' 'frozen' 'no-project' 'version' 'h/help'
        case 'pull'
            __azl-shell_parse_subcommand 1 'root=' 'v/verbose' 'q/quiet' 'platform=' 'tls-verify=' 'creds=' 'json' 'version' 'h/help'
        case 'import'
            __azl-shell_parse_subcommand 1 'root=' 'v/verbose' 'q/quiet' 'name=' 'json' 'platform=' 'version' 'h/help'
        case 'images'
            __azl-shell_parse_subcommand 0 'root=' 'v/verbose' 'q/quiet' 'json' 'digests' 'available' 'version' 'h/help'
        case 'rmi'
            __azl-shell_parse_subcommand -r 1 'root=' 'v/verbose' 'q/quiet' 'force' 'version' 'h/help'
        case 'prune'
            __azl-shell_parse_subcommand 0 'root=' 'v/verbose' 'q/quiet' 'json' 'version' 'h/help'
        case 'kernel'
            __azl-shell_parse_subcommand 0 'root=' 'v/verbose' 'q/quiet' 'image=' 'kernel=' 'cap-add=+' 'cap-drop=+' 'json' 'list' 'version' 'h/help'
        case 'doctor'
            __azl-shell_parse_subcommand 0 'root=' 'v/verbose' 'q/quiet' 'json' 'version' 'h/help'
        case 'pkgtest'
            __azl-shell_parse_subcommand -r 1 'root=' 'v/verbose' 'q/quiet' 'image=' 'platform=' 'kernel=' 'smoke=' 'offline' 'jobs=' 'logs=' 'json' 'tls-verify=' 'creds=' 'version' 'h/help'
        case 'create'
            __azl-shell_parse_subcommand 1 'root=' 'v/verbose' 'q/quiet' 'platform=' 'tls-verify=' 'creds=' 'json' 'image=' 'home=' 'u/user=' 'volume=+' 'e/env=+' 'kernel=' 'network=' 'no-forward' 'idle=' 'version' 'h/help'
        case 'enter'
            __azl-shell_parse_subcommand 1 'root=' 'v/verbose' 'q/quiet' 'u/user=' 'e/env=+' 'w/workdir=' 'version' 'h/help'
        case 'exec'
            __azl-shell_parse_subcommand -r 2 'root=' 'v/verbose' 'q/quiet' 'u/user=' 'e/env=+' 'w/workdir=' 'abi-report=' 'version' 'h/help'
        case 'list'
            __azl-shell_parse_subcommand 0 'root=' 'v/verbose' 'q/quiet' 'json' 'version' 'h/help'
        case 'stop'
            __azl-shell_parse_subcommand -r 1 'root=' 'v/verbose' 'q/quiet' 'version' 'h/help'
        case 'rm'
            __azl-shell_parse_subcommand -r 1 'root=' 'v/verbose' 'q/quiet' 'f/force' 'version' 'h/help'
        case 'setup'
            __azl-shell_parse_subcommand 0 'root=' 'v/verbose' 'q/quiet' 'platform=' 'tls-verify=' 'creds=' 'json' 'refresh' 'frozen' 'version' 'h/help'
        case 'lock'
            __azl-shell_parse_subcommand 0 'root=' 'v/verbose' 'q/quiet' 'platform=' 'tls-verify=' 'creds=' 'json' 'update' 'version' 'h/help'
        case 'trust'
            __azl-shell_parse_subcommand 0 'root=' 'v/verbose' 'q/quiet' 'revoke' 'version' 'h/help'
        case 'help'
            __azl-shell_parse_subcommand -r 1 'version'
        end
    end
end

function __azl-shell_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __azl-shell_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __azl-shell_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __azl-shell_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__azl-shell_tokens -p)
    if test -z "$(__azl-shell_tokens -t)"
        set -l index (count (__azl-shell_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'azl-shell' -f
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'run' -d 'Run a command inside an image, rootless, with an ephemeral root.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'pull' -d 'Fetch an image from an OCI registry (or by a short name from rootfs-manifests).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'import' -d 'Import a rootfs tarball (.tar, .tar.gz, .tar.xz, .tar.zst; detected by content) as an image.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'images' -d 'List stored images.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'rmi' -d 'Remove image names, and the data only they used.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'prune' -d 'Remove blobs and unpacked trees no image references.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'kernel' -d 'Show the kernel profile and security policy a run gets.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'doctor' -d 'Check that this machine and user can run sandboxes, and say how to fix what cannot.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'pkgtest' -d 'Install, verify, smoke-test and remove package files on each target image.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'create' -d 'Create a named environment: its own persistent layer over an image.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'enter' -d 'An interactive login shell in an environment.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'exec' -d 'Run a command in an environment.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'list' -d 'List environments.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'stop' -d 'Stop an environment\'s live sandbox (SIGTERM to everything inside, SIGKILL after 5 s).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'rm' -d 'Remove environments and their layers.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'setup' -d 'Run the project\'s setup steps (azl-shell.toml) into cached layers.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'lock' -d 'Write the project\'s azl-shell.lock (image digest, kernel profile, setup step keys).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'trust' -d 'Allow the project file to bind what lies outside its folder (volumes, your real home).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" platform' -l 'platform' -d 'The platform: which image of a multi-arch index to pull; run also checks the stored image is for it and runs a foreign one through qemu-user (default: this machine; run: the image\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" tls-verify' -l 'tls-verify' -d 'Verify TLS certificates; false also allows plain HTTP.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" creds' -l 'creds' -d 'Credentials for the registry (default: the auth files).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" json' -l 'json' -d 'Pull progress as one JSON event per line (stdout for pull, stderr for run).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" image' -l 'image' -d 'The image to run: NAME[:TAG] or an image id from the store, a known short name (azurelinux:3.0) or a registry reference; those two are pulled on first use.' -rfka '(__azl-shell_custom_completion ---completion run -- --image (count (__azl-shell_tokens -pc)) (__azl-shell_tokens -tC))'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run"' -s 'e' -l 'env' -d 'Set KEY=VALUE in the command\'s environment, or pass KEY through from yours.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run"' -l 'volume' -d 'Bind-mount the host\'s SRC at DST (add :ro for read-only).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" w workdir' -s 'w' -l 'workdir' -d 'Working directory inside (default: the current directory, bind-mounted).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" u user' -s 'u' -l 'user' -d 'root (default), keep-id (your own uid, gid and name), UID[:GID] or a user of the image.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" hostname' -l 'hostname' -d 'Hostname inside (default: the image name).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" network' -l 'network' -d 'host (default: share the host\'s network) or none (only lo).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" read-only' -l 'read-only' -d 'Immutable root: only /tmp, /var/tmp and /run are writable.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" kernel' -l 'kernel' -d 'The kernel the command sees: a profile (azl-shell kernel --list), a release such as 5.15.0, or host (default: the image\'s profile).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run"' -l 'cap-add' -d 'Keep this capability too (CAP_NET_ADMIN, net_admin, or all); repeatable.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run"' -l 'cap-drop' -d 'Drop this capability from the default set (or all); repeatable.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" matrix' -l 'matrix' -d 'Run CMD on every one of these images (times each --platform and --kernel, comma-separated too), each in its own root; a row per target, logs kept; exit 0 only when all passed. --json: the report as JSON. No images: the project file\'s `matrix`.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" jobs' -l 'jobs' -d 'With --matrix: targets run at once (default: the number of cores).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" logs' -l 'logs' -d 'With --matrix: the folder for each target\'s log (default: a new one in the cache folder).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" abi-report' -l 'abi-report' -d 'Write every syscall the target kernel refused (ENOSYS) or the policy denied (EPERM): name, program, calls, reason; with --matrix, a section per target.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" frozen' -l 'frozen' -d 'In a project: fail if azl-shell.lock does not match the project file or its image (the default when CI=true).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" no-project' -l 'no-project' -d 'Ignore the project file (azl-shell.toml) of this folder and above.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell run" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pull" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pull" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pull" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pull" platform' -l 'platform' -d 'The platform: which image of a multi-arch index to pull; run also checks the stored image is for it and runs a foreign one through qemu-user (default: this machine; run: the image\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pull" tls-verify' -l 'tls-verify' -d 'Verify TLS certificates; false also allows plain HTTP.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pull" creds' -l 'creds' -d 'Credentials for the registry (default: the auth files).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pull" json' -l 'json' -d 'Pull progress as one JSON event per line (stdout for pull, stderr for run).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pull" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pull" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell import" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell import" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell import" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell import" -eq 1' -F
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell import" name' -l 'name' -d 'Name for the image, NAME[:TAG] (default tag: latest).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell import" json' -l 'json' -d 'Print the record as JSON.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell import" platform' -l 'platform' -d 'The image\'s platform (default: read from its programs\' ELF headers).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell import" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell import" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell images" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell images" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell images" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell images" json' -l 'json' -d 'One JSON array of records.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell images" digests' -l 'digests' -d 'Print image ids only.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell images" available' -l 'available' -d 'List the images azl-shell knows by short name (rootfs-manifests), pulled or not.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell images" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell images" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rmi" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rmi" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rmi" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell rmi" -ge 1' -fka '(__azl-shell_custom_completion ---completion rmi -- positional@0 (count (__azl-shell_tokens -pc)) (__azl-shell_tokens -tC))'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rmi" force' -l 'force' -d 'Given an image id with several names, remove them all.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rmi" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rmi" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell prune" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell prune" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell prune" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell prune" json' -l 'json' -d 'Print what was removed as JSON.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell prune" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell prune" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel" image' -l 'image' -d 'Show what a run of this image gets (NAME[:TAG] or an image id).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel" kernel' -l 'kernel' -d 'The kernel the command sees: a profile (azl-shell kernel --list), a release such as 5.15.0, or host (default: the image\'s profile).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel"' -l 'cap-add' -d 'Keep this capability too (CAP_NET_ADMIN, net_admin, or all); repeatable.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel"' -l 'cap-drop' -d 'Drop this capability from the default set (or all); repeatable.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel" json' -l 'json' -d 'One JSON object.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel" list' -l 'list' -d 'List the kernel profiles instead.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell kernel" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell doctor" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell doctor" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell doctor" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell doctor" json' -l 'json' -d 'One JSON object: {"ok": BOOL, "checks": [{"id", "status", "summary", "fix"}]}.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell doctor" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell doctor" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" image' -l 'image' -d 'The images to test on, comma-separated (as run --image takes them).' -rfka '(__azl-shell_custom_completion ---completion pkgtest -- --image (count (__azl-shell_tokens -pc)) (__azl-shell_tokens -tC))'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" platform' -l 'platform' -d 'Platforms to pull the images for, comma-separated (default: this machine\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" kernel' -l 'kernel' -d 'Kernel profiles to test under, comma-separated (default: each image\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" smoke' -l 'smoke' -d 'The smoke command, run with sh -c (default: each installed /usr/bin executable with --version).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" offline' -l 'offline' -d 'Install from the package files and what the image has only (no network).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" jobs' -l 'jobs' -d 'Targets tested at once (default: the number of cores).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" logs' -l 'logs' -d 'The folder for every target\'s logs (default: a new one in $TMPDIR).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" json' -l 'json' -d 'The report as JSON.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" tls-verify' -l 'tls-verify' -d 'Verify TLS certificates when pulling; false also allows plain HTTP.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" creds' -l 'creds' -d 'Credentials for the registry (default: the auth files).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell pkgtest" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" platform' -l 'platform' -d 'The platform: which image of a multi-arch index to pull; run also checks the stored image is for it and runs a foreign one through qemu-user (default: this machine; run: the image\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" tls-verify' -l 'tls-verify' -d 'Verify TLS certificates; false also allows plain HTTP.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" creds' -l 'creds' -d 'Credentials for the registry (default: the auth files).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" json' -l 'json' -d 'Pull progress as one JSON event per line (stdout for pull, stderr for run).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" image' -l 'image' -d 'The image: NAME[:TAG], an image id, a known short name or a registry reference (pulled on first use).' -rfka '(__azl-shell_custom_completion ---completion create -- --image (count (__azl-shell_tokens -pc)) (__azl-shell_tokens -tC))'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" home' -l 'home' -d 'private (default: a home of its own at your home\'s path), host (your home bound in) or overlay (your home as a copy-on-write layer).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" u user' -s 'u' -l 'user' -d 'keep-id (default: you, with your uid, gid and home path) or root; sessions may say --user root.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create"' -l 'volume' -d 'Bind-mount the host\'s SRC at DST (add :ro for read-only).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create"' -s 'e' -l 'env' -d 'Set KEY=VALUE in every session, or pass KEY through.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" kernel' -l 'kernel' -d 'The kernel sessions see: a profile, a release or host (default: the image\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" network' -l 'network' -d 'host (default) or none (only lo).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" no-forward' -l 'no-forward' -d 'Do not forward the SSH agent and ~/.gitconfig into a private or overlay home.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" idle' -l 'idle' -d 'Seconds the live sandbox stays after its last session (default 300).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell create" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell enter" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell enter" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell enter" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell enter" u user' -s 'u' -l 'user' -d 'keep-id (you) or root, for this session (default: the environment\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell enter"' -s 'e' -l 'env' -d 'Set KEY=VALUE for this session, or pass KEY through.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell enter" w workdir' -s 'w' -l 'workdir' -d 'Working directory inside (default: the current directory when the environment shows it at the same path, else the home).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell enter" -eq 1' -fka '(__azl-shell_custom_completion ---completion enter -- positional@0 (count (__azl-shell_tokens -pc)) (__azl-shell_tokens -tC))'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell enter" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell enter" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell exec" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell exec" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell exec" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell exec" u user' -s 'u' -l 'user' -d 'keep-id (you) or root, for this session (default: the environment\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell exec"' -s 'e' -l 'env' -d 'Set KEY=VALUE for this session, or pass KEY through.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell exec" w workdir' -s 'w' -l 'workdir' -d 'Working directory inside (default: the current directory when the environment shows it at the same path, else the home).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell exec" abi-report' -l 'abi-report' -d 'Write every syscall of this session\'s command that the target kernel refused (ENOSYS) or the policy denied (EPERM): name, program, calls, reason (before NAME, as every option).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell exec" -eq 1' -fka '(__azl-shell_custom_completion ---completion exec -- positional@0 (count (__azl-shell_tokens -pc)) (__azl-shell_tokens -tC))'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell exec" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell exec" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell list" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell list" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell list" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell list" json' -l 'json' -d 'Print JSON.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell list" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell list" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell stop" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell stop" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell stop" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell stop" -ge 1' -fka '(__azl-shell_custom_completion ---completion stop -- positional@0 (count (__azl-shell_tokens -pc)) (__azl-shell_tokens -tC))'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell stop" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell stop" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rm" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rm" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rm" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rm" f force' -l 'force' -s 'f' -d 'Stop one with sessions inside first.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_positional "azl-shell rm" -ge 1' -fka '(__azl-shell_custom_completion ---completion rm -- positional@0 (count (__azl-shell_tokens -pc)) (__azl-shell_tokens -tC))'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rm" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell rm" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" platform' -l 'platform' -d 'The platform: which image of a multi-arch index to pull; run also checks the stored image is for it and runs a foreign one through qemu-user (default: this machine; run: the image\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" tls-verify' -l 'tls-verify' -d 'Verify TLS certificates; false also allows plain HTTP.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" creds' -l 'creds' -d 'Credentials for the registry (default: the auth files).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" json' -l 'json' -d 'Pull progress as one JSON event per line (stdout for pull, stderr for run).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" refresh' -l 'refresh' -d 'Rebuild every layer, cached or not.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" frozen' -l 'frozen' -d 'Fail if azl-shell.lock does not match the project file or its image (the default when CI=true).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell setup" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" platform' -l 'platform' -d 'The platform: which image of a multi-arch index to pull; run also checks the stored image is for it and runs a foreign one through qemu-user (default: this machine; run: the image\'s).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" tls-verify' -l 'tls-verify' -d 'Verify TLS certificates; false also allows plain HTTP.' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" creds' -l 'creds' -d 'Credentials for the registry (default: the auth files).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" json' -l 'json' -d 'Pull progress as one JSON event per line (stdout for pull, stderr for run).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" update' -l 'update' -d 'Resolve the image again (a tag that moved is followed).'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell lock" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell trust" root' -l 'root' -d 'State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).' -rfka ''
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell trust" v verbose' -l 'verbose' -s 'v' -d 'Say more about what is done.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell trust" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell trust" revoke' -l 'revoke' -d 'Take the approval back.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell trust" version' -l 'version' -d 'Show the version.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell trust" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'azl-shell' -n '__azl-shell_should_offer_completions_for_flags_or_options "azl-shell help" version' -l 'version' -d 'Show the version.'
