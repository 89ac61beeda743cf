# format.jq: number formatting for the bench tables (jq -L bench/jq).
def dash: "–";
# fixed decimals, as text; null prints a dash.
def fmt($d):
  if . == null then dash
  else (. * pow(10; $d) | round) as $n
    | if $d == 0 then ($n | tostring)
      else ($n | tostring) as $s
        | (if $n < 0 then "-" else "" end) as $sign
        | ($s | ltrimstr("-")) as $a
        | ("0" * ([($d + 1) - ($a | length), 0] | max) + $a) as $p
        | $sign + $p[0:($p | length) - $d] + "." + $p[($p | length) - $d:]
      end
  end;
# thousands separated integer.
def int:
  if . == null then dash
  else (round | tostring) as $s
    | [range(0; $s | length)] | map(. as $i | $s[$i:$i+1]
        + (if ((($s | length) - $i - 1) % 3 == 0 and $i < ($s | length) - 1) then "," else "" end))
    | join("")
  end;
def pct: if . == null then dash else (. * 100 | round | tostring) + "%" end;
def mdrow: "| " + join(" | ") + " |";
def mdsep($n): "|" + ([range(0; $n)] | map("---") | join("|")) + "|";
