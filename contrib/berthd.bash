# bash completion for the berthd command line (docs/cli.md).
#   source contrib/berthd.bash
_berthd() {
    local cur prev words cword
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local globals="--addr -o --cacert --cert --key --timeout"
    local groups="vm gw dep logs watch help"
    local group="" verb="" i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
            --addr|-o|--cacert|--cert|--key|--timeout) ((i++)); continue ;;
            -*) continue ;;
        esac
        if [ -z "$group" ]; then group=$w; elif [ -z "$verb" ]; then verb=$w; fi
    done
    case $prev in
        -o) COMPREPLY=($(compgen -W "json table" -- "$cur")); return ;;
        --cacert|--cert|--key) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --state) COMPREPLY=($(compgen -W "created running paused shutdown" -- "$cur")); return ;;
        --kind) COMPREPLY=($(compgen -W "vm gateway deployment" -- "$cur")); return ;;
    esac
    if [ -z "$group" ]; then
        COMPREPLY=($(compgen -W "$groups $globals" -- "$cur"))
        return
    fi
    case $group in
        vm)
            if [ -z "$verb" ]; then
                COMPREPLY=($(compgen -W "ls create info boot shutdown pause resume reboot rm" -- "$cur"))
                return
            fi
            case $verb in
                ls) COMPREPLY=($(compgen -W "--state" -- "$cur")) ;;
                create) COMPREPLY=($(compgen -W "--image --port --env --cpu --memory --customer --workdir" -- "$cur")) ;;
                shutdown) COMPREPLY=($(compgen -W "--force --timeout" -- "$cur")) ;;
                reboot|rm) COMPREPLY=($(compgen -W "--force" -- "$cur")) ;;
            esac ;;
        gw)
            if [ -z "$verb" ]; then
                COMPREPLY=($(compgen -W "ls info rm" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "--namespace" -- "$cur"))
            fi ;;
        dep)
            if [ -z "$verb" ]; then
                COMPREPLY=($(compgen -W "ls info rm scale" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "--namespace" -- "$cur"))
            fi ;;
        logs) COMPREPLY=($(compgen -W "-f --tail --instance --namespace" -- "$cur")) ;;
        watch) COMPREPLY=($(compgen -W "--kind --namespace --id" -- "$cur")) ;;
    esac
}
complete -F _berthd berthd
