# Converts a Docker/podman-format seccomp profile (containers-common's
# /usr/share/containers/seccomp.json) into the OCI `linux.seccomp` object for an amd64 host,
# the way podman does: rules are kept when their includes (arches, caps) match and their
# excludes do not, given the container's capabilities in $caps (a JSON array).
#   jq --argjson caps '["CAP_KILL"]' -f bench/oci-seccomp.jq /usr/share/containers/seccomp.json
def has($l; $x): ($l // []) | any(.[]; . == $x);
{
  defaultAction,
  defaultErrnoRet,
  architectures: ([.archMap[] | select(.architecture == "SCMP_ARCH_X86_64") | [.architecture] + .subArchitectures] | first),
  syscalls: [
    .syscalls[]
    | select(has(.excludes.arches; "amd64") | not)
    | select((.excludes.caps // []) | any(.[]; . as $c | $caps | any(.[]; . == $c)) | not)
    | select(((.includes.arches // []) | length) == 0 or has(.includes.arches; "amd64"))
    | select((.includes.caps // []) | all(.[]; . as $c | $caps | any(.[]; . == $c)))
    | {names, action}
      + (if .errnoRet != null then {errnoRet} else {} end)
      + (if ((.args // []) | length) > 0 then {args} else {} end)
  ]
}
