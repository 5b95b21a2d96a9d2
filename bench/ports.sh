# Sourced by the bench scripts: free_port prints a loopback TCP port nothing listens on (the
# caller binds it soon after; a port can still be taken in between, so binders retry).
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then
      echo "$p"
      return 0
    fi
  done
  echo "free_port: no free port found" >&2
  return 1
}
