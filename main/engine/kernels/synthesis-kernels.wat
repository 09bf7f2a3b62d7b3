;; The synthesis's per-element passes in WebAssembly with 128-bit SIMD: four float32 lanes at a time
;; where JavaScript computes one double. Memory is imported, so the arrays a pass reads and writes are
;; views of it (KernelArena in synthesis-kernels.ts); offsets are in bytes, 16-byte aligned, and a
;; length in floats is rounded up to whole vectors (every allocation is padded with zeros to match).
(module
  (import "env" "memory" (memory 1))

  ;; Adam, in place: m ← β1·m + (1−β1)·g, s ← β2·s + (1−β2)·g², v ← v + step·m / (√(s·c2) + 1e-8),
  ;; with step = lr / (1 − β1^t) and c2 = 1 / (1 − β2^t) (the bias corrections) given by the caller,
  ;; and 1 − β1, 1 − β2 too: in float32, 1 − 0.999f is 1.3e-5 off 0.001.
  (func (export "adam")
    (param $v i32) (param $g i32) (param $m i32) (param $s i32) (param $n i32)
    (param $beta1 f32) (param $oneMinusBeta1 f32) (param $beta2 f32) (param $oneMinusBeta2 f32) (param $step f32) (param $c2 f32)
    (local $i i32) (local $end i32)
    (local $b1 v128) (local $b2 v128) (local $ob1 v128) (local $ob2 v128)
    (local $st v128) (local $cc v128) (local $eps v128)
    (local $gi v128) (local $mi v128) (local $si v128)
    (local.set $b1 (f32x4.splat (local.get $beta1)))
    (local.set $b2 (f32x4.splat (local.get $beta2)))
    (local.set $ob1 (f32x4.splat (local.get $oneMinusBeta1)))
    (local.set $ob2 (f32x4.splat (local.get $oneMinusBeta2)))
    (local.set $st (f32x4.splat (local.get $step)))
    (local.set $cc (f32x4.splat (local.get $c2)))
    (local.set $eps (f32x4.splat (f32.const 1e-8)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $gi (v128.load (i32.add (local.get $g) (local.get $i))))
        (local.set $mi
          (f32x4.add
            (f32x4.mul (local.get $b1) (v128.load (i32.add (local.get $m) (local.get $i))))
            (f32x4.mul (local.get $ob1) (local.get $gi))))
        (local.set $si
          (f32x4.add
            (f32x4.mul (local.get $b2) (v128.load (i32.add (local.get $s) (local.get $i))))
            (f32x4.mul (local.get $ob2) (f32x4.mul (local.get $gi) (local.get $gi)))))
        (v128.store (i32.add (local.get $m) (local.get $i)) (local.get $mi))
        (v128.store (i32.add (local.get $s) (local.get $i)) (local.get $si))
        (v128.store (i32.add (local.get $v) (local.get $i))
          (f32x4.add
            (v128.load (i32.add (local.get $v) (local.get $i)))
            (f32x4.div
              (f32x4.mul (local.get $st) (local.get $mi))
              (f32x4.add (f32x4.sqrt (f32x4.mul (local.get $si) (local.get $cc))) (local.get $eps)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))
;; Where view pixel (y, x) of an image reads it, the view being the image rolled by (dy, dx) and
  ;; scaled and turned about the centre (c_y, c_x): source = c + R·((y, x) − shift − c), R = R(−angle)/
  ;; scale given as (cos, sin); wrapping round the borders as the roll does. Along a row the source
  ;; moves by (sin, cos) per pixel. The coordinates are doubles, as the JavaScript form of this
  ;; warp computed them, so that both place every tap alike; the weights are float32.
  ;;
  ;; warp_input: the network input of one view (3 channels, interleaved): each of the four source
  ;; pixels clipped to ±grey (pmin and pmax, one instruction each where min and max are eight; in
  ;; this order a NaN passes through, as the JavaScript clip let it), shifted to 0…255 and interpolated, then the preprocessing affine map
  ;; x = A·p + o, whose columns and offset are the four vectors at $affine (A's column k, then o).
  ;; unwarp_gradient: its adjoint without the clip (the clip is taken as if it were not there, as
  ;; everywhere in the synthesis), added into $out, which the caller zeroes first. $out holds four
  ;; floats a pixel (the fourth stays 0): each tap's add then reads and writes a whole aligned vector
  ;; of its own, where with three a pixel's vector overlaps its neighbours' and the next tap's load
  ;; waits for the stores before it (6.7 → 4.5 ms for four 224 px views, measured).
  (func $wrap (param $i i32) (param $n i32) (result i32)
    (block $low
      (loop $up
        (br_if $low (i32.ge_s (local.get $i) (i32.const 0)))
        (local.set $i (i32.add (local.get $i) (local.get $n)))
        (br $up)))
    (block $high
      (loop $down
        (br_if $high (i32.lt_s (local.get $i) (local.get $n)))
        (local.set $i (i32.sub (local.get $i) (local.get $n)))
        (br $down)))
    (local.get $i))

  (func (export "warp_input")
    (param $img i32) (param $out i32) (param $h i32) (param $w i32)
    (param $dy f64) (param $dx f64) (param $cos f64) (param $sin f64)
    (param $affine i32) (param $grey f32)
    (local $y i32) (local $x i32) (local $o i32) (local $row i32)
    (local $sy f64) (local $sx f64) (local $fy f64) (local $fx f64) (local $ty f32) (local $tx f32)
    (local $y0 i32) (local $x0 i32) (local $r0 i32) (local $r1 i32) (local $c0 i32) (local $c1 i32)
    (local $w00 f32) (local $w01 f32) (local $w10 f32) (local $w11 f32)
    (local $hi v128) (local $lo v128) (local $g v128) (local $p v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $off v128)
    (local $cy f64) (local $cx f64) (local $u f64) (local $v0 f64)
    (local.set $hi (f32x4.splat (local.get $grey)))
    (local.set $lo (f32x4.neg (local.get $hi)))
    (local.set $a0 (v128.load (local.get $affine)))
    (local.set $a1 (v128.load offset=16 (local.get $affine)))
    (local.set $a2 (v128.load offset=32 (local.get $affine)))
    (local.set $off (v128.load offset=48 (local.get $affine)))
    (local.set $row (i32.mul (local.get $w) (i32.const 12)))
    (local.set $cy (f64.div (f64.convert_i32_s (i32.sub (local.get $h) (i32.const 1))) (f64.const 2)))
    (local.set $cx (f64.div (f64.convert_i32_s (i32.sub (local.get $w) (i32.const 1))) (f64.const 2)))
    (local.set $o (local.get $out))
    (local.set $v0 (f64.sub (f64.neg (local.get $dx)) (local.get $cx)))
    (block $rows
      (loop $each_row
        (br_if $rows (i32.ge_s (local.get $y) (local.get $h)))
        (local.set $u (f64.sub (f64.sub (f64.convert_i32_s (local.get $y)) (local.get $dy)) (local.get $cy)))
        (local.set $sy (f64.add (local.get $cy) (f64.add (f64.mul (local.get $cos) (local.get $u)) (f64.mul (local.get $sin) (local.get $v0)))))
        (local.set $sx (f64.add (local.get $cx) (f64.sub (f64.mul (local.get $cos) (local.get $v0)) (f64.mul (local.get $sin) (local.get $u)))))
        (local.set $x (i32.const 0))
        (block $cols
          (loop $each_col
            (br_if $cols (i32.ge_s (local.get $x) (local.get $w)))
            (local.set $fy (f64.floor (local.get $sy)))
            (local.set $fx (f64.floor (local.get $sx)))
            (local.set $ty (f32.demote_f64 (f64.sub (local.get $sy) (local.get $fy))))
            (local.set $tx (f32.demote_f64 (f64.sub (local.get $sx) (local.get $fx))))
            (local.set $y0 (i32.trunc_f64_s (local.get $fy)))
            (if (i32.ge_u (local.get $y0) (local.get $h)) (then (local.set $y0 (call $wrap (local.get $y0) (local.get $h)))))
            (local.set $x0 (i32.trunc_f64_s (local.get $fx)))
            (if (i32.ge_u (local.get $x0) (local.get $w)) (then (local.set $x0 (call $wrap (local.get $x0) (local.get $w)))))
            (local.set $r0 (i32.add (local.get $img) (i32.mul (local.get $y0) (local.get $row))))
            (local.set $r1 (select (local.get $img) (i32.add (local.get $r0) (local.get $row))
              (i32.eq (i32.add (local.get $y0) (i32.const 1)) (local.get $h))))
            (local.set $c0 (i32.mul (local.get $x0) (i32.const 12)))
            (local.set $c1 (select (i32.const 0) (i32.add (local.get $c0) (i32.const 12))
              (i32.eq (i32.add (local.get $x0) (i32.const 1)) (local.get $w))))
            (local.set $w11 (f32.mul (local.get $ty) (local.get $tx)))
            (local.set $w00 (f32.sub (f32.sub (f32.const 1) (local.get $ty)) (f32.sub (local.get $tx) (local.get $w11))))
            (local.set $w01 (f32.sub (local.get $tx) (local.get $w11)))
            (local.set $w10 (f32.sub (local.get $ty) (local.get $w11)))
            (local.set $p
              (f32x4.add
                (f32x4.add
                  (f32x4.mul (f32x4.splat (local.get $w00))
                    (f32x4.add (f32x4.pmax (f32x4.pmin (v128.load (i32.add (local.get $r0) (local.get $c0))) (local.get $hi)) (local.get $lo)) (local.get $hi)))
                  (f32x4.mul (f32x4.splat (local.get $w01))
                    (f32x4.add (f32x4.pmax (f32x4.pmin (v128.load (i32.add (local.get $r0) (local.get $c1))) (local.get $hi)) (local.get $lo)) (local.get $hi))))
                (f32x4.add
                  (f32x4.mul (f32x4.splat (local.get $w10))
                    (f32x4.add (f32x4.pmax (f32x4.pmin (v128.load (i32.add (local.get $r1) (local.get $c0))) (local.get $hi)) (local.get $lo)) (local.get $hi)))
                  (f32x4.mul (f32x4.splat (local.get $w11))
                    (f32x4.add (f32x4.pmax (f32x4.pmin (v128.load (i32.add (local.get $r1) (local.get $c1))) (local.get $hi)) (local.get $lo)) (local.get $hi))))))
            ;; The fourth lane stores into the next pixel, which is written after it (the last
            ;; pixel's into the allocation's guard).
            (v128.store (local.get $o)
              (f32x4.add
                (f32x4.add
                  (f32x4.mul (local.get $a0) (i8x16.shuffle 0 1 2 3 0 1 2 3 0 1 2 3 0 1 2 3 (local.get $p) (local.get $p)))
                  (f32x4.mul (local.get $a1) (i8x16.shuffle 4 5 6 7 4 5 6 7 4 5 6 7 4 5 6 7 (local.get $p) (local.get $p))))
                (f32x4.add
                  (f32x4.mul (local.get $a2) (i8x16.shuffle 8 9 10 11 8 9 10 11 8 9 10 11 8 9 10 11 (local.get $p) (local.get $p)))
                  (local.get $off))))
            (local.set $o (i32.add (local.get $o) (i32.const 12)))
            (local.set $sy (f64.add (local.get $sy) (local.get $sin)))
            (local.set $sx (f64.add (local.get $sx) (local.get $cos)))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $each_col)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $each_row))))

  (func (export "unwarp_gradient")
    (param $g i32) (param $out i32) (param $h i32) (param $w i32)
    (param $dy f64) (param $dx f64) (param $cos f64) (param $sin f64)
    (local $y i32) (local $x i32) (local $o i32) (local $row i32)
    (local $sy f64) (local $sx f64) (local $fy f64) (local $fx f64) (local $ty f32) (local $tx f32)
    (local $y0 i32) (local $x0 i32) (local $r0 i32) (local $r1 i32) (local $c0 i32) (local $c1 i32)
    (local $w11 f32) (local $gv v128) (local $mask v128) (local $at i32)
    (local $cy f64) (local $cx f64) (local $u f64) (local $v0 f64)
    ;; The fourth lane of a pixel's gradient is the next pixel's: zeroed, so that adding it to the
    ;; neighbour's first channel adds nothing.
    (local.set $mask (v128.const i32x4 -1 -1 -1 0))
    (local.set $row (i32.mul (local.get $w) (i32.const 16)))
    (local.set $cy (f64.div (f64.convert_i32_s (i32.sub (local.get $h) (i32.const 1))) (f64.const 2)))
    (local.set $cx (f64.div (f64.convert_i32_s (i32.sub (local.get $w) (i32.const 1))) (f64.const 2)))
    (local.set $o (local.get $g))
    (local.set $v0 (f64.sub (f64.neg (local.get $dx)) (local.get $cx)))
    (block $rows
      (loop $each_row
        (br_if $rows (i32.ge_s (local.get $y) (local.get $h)))
        (local.set $u (f64.sub (f64.sub (f64.convert_i32_s (local.get $y)) (local.get $dy)) (local.get $cy)))
        (local.set $sy (f64.add (local.get $cy) (f64.add (f64.mul (local.get $cos) (local.get $u)) (f64.mul (local.get $sin) (local.get $v0)))))
        (local.set $sx (f64.add (local.get $cx) (f64.sub (f64.mul (local.get $cos) (local.get $v0)) (f64.mul (local.get $sin) (local.get $u)))))
        (local.set $x (i32.const 0))
        (block $cols
          (loop $each_col
            (br_if $cols (i32.ge_s (local.get $x) (local.get $w)))
            (local.set $fy (f64.floor (local.get $sy)))
            (local.set $fx (f64.floor (local.get $sx)))
            (local.set $ty (f32.demote_f64 (f64.sub (local.get $sy) (local.get $fy))))
            (local.set $tx (f32.demote_f64 (f64.sub (local.get $sx) (local.get $fx))))
            (local.set $y0 (i32.trunc_f64_s (local.get $fy)))
            (if (i32.ge_u (local.get $y0) (local.get $h)) (then (local.set $y0 (call $wrap (local.get $y0) (local.get $h)))))
            (local.set $x0 (i32.trunc_f64_s (local.get $fx)))
            (if (i32.ge_u (local.get $x0) (local.get $w)) (then (local.set $x0 (call $wrap (local.get $x0) (local.get $w)))))
            (local.set $r0 (i32.add (local.get $out) (i32.mul (local.get $y0) (local.get $row))))
            (local.set $r1 (select (local.get $out) (i32.add (local.get $r0) (local.get $row))
              (i32.eq (i32.add (local.get $y0) (i32.const 1)) (local.get $h))))
            (local.set $c0 (i32.mul (local.get $x0) (i32.const 16)))
            (local.set $c1 (select (i32.const 0) (i32.add (local.get $c0) (i32.const 16))
              (i32.eq (i32.add (local.get $x0) (i32.const 1)) (local.get $w))))
            (local.set $w11 (f32.mul (local.get $ty) (local.get $tx)))
            (local.set $gv (v128.and (v128.load (local.get $o)) (local.get $mask)))
            (local.set $at (i32.add (local.get $r0) (local.get $c0)))
            (v128.store (local.get $at) (f32x4.add (v128.load (local.get $at))
              (f32x4.mul (f32x4.splat (f32.sub (f32.sub (f32.const 1) (local.get $ty)) (f32.sub (local.get $tx) (local.get $w11)))) (local.get $gv))))
            (local.set $at (i32.add (local.get $r0) (local.get $c1)))
            (v128.store (local.get $at) (f32x4.add (v128.load (local.get $at))
              (f32x4.mul (f32x4.splat (f32.sub (local.get $tx) (local.get $w11))) (local.get $gv))))
            (local.set $at (i32.add (local.get $r1) (local.get $c0)))
            (v128.store (local.get $at) (f32x4.add (v128.load (local.get $at))
              (f32x4.mul (f32x4.splat (f32.sub (local.get $ty) (local.get $w11))) (local.get $gv))))
            (local.set $at (i32.add (local.get $r1) (local.get $c1)))
            (v128.store (local.get $at) (f32x4.add (v128.load (local.get $at))
              (f32x4.mul (f32x4.splat (local.get $w11)) (local.get $gv))))
            (local.set $o (i32.add (local.get $o) (i32.const 12)))
            (local.set $sy (f64.add (local.get $sy) (local.get $sin)))
            (local.set $sx (f64.add (local.get $sx) (local.get $cos)))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $each_col)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $each_row))))

  ;; The pyramid (pyramid.ts): its levels upsampled ×2 along x and along y and summed into the next
  ;; level's size, and the transposes of both; the colour matrix and its transpose per pixel. A pixel
  ;; is three floats: a pass reads and writes it as four lanes, and the fourth lane of a store lands
  ;; on the next pixel, which the same pass writes after it (the last into the allocation's padding),
  ;; so each of these writes a whole allocation or images of one in order. `scale` alone writes
  ;; exactly its n floats (levels lie end to end: nothing past one may be touched).

  ;; dst[k] = wt · src[k], k < n.
  (func (export "scale") (param $dst i32) (param $src i32) (param $n i32) (param $wt f32)
    (local $i i32) (local $end i32) (local $vend i32) (local $wv v128)
    (local.set $wv (f32x4.splat (local.get $wt)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (local.set $vend (i32.and (local.get $end) (i32.const -16)))
    (block $vectors
      (loop $vector
        (br_if $vectors (i32.ge_u (local.get $i) (local.get $vend)))
        (v128.store (i32.add (local.get $dst) (local.get $i))
          (f32x4.mul (local.get $wv) (v128.load (i32.add (local.get $src) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $vector)))
    (block $floats
      (loop $float
        (br_if $floats (i32.ge_u (local.get $i) (local.get $end)))
        (f32.store (i32.add (local.get $dst) (local.get $i))
          (f32.mul (local.get $wt) (f32.load (i32.add (local.get $src) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $float))))

  ;; Along x: row r of $prev ([ph, pw, 3]) → row r of $half ([ph, 2pw, 3]): out[2j] = in[j],
  ;; out[2j+1] = (in[j] + in[min(j+1, pw−1)]) / 2.
  (func (export "up2x") (param $prev i32) (param $half i32) (param $ph i32) (param $pw i32)
    (local $r i32) (local $j i32) (local $a i32) (local $o i32) (local $last i32) (local $v v128) (local $h v128)
    (local.set $h (f32x4.splat (f32.const 0.5)))
    (local.set $a (local.get $prev))
    (local.set $o (local.get $half))
    (local.set $last (i32.sub (local.get $pw) (i32.const 1)))
    (block $rows
      (loop $row
        (br_if $rows (i32.ge_s (local.get $r) (local.get $ph)))
        (local.set $j (i32.const 0))
        (block $cols
          (loop $col
            (br_if $cols (i32.ge_s (local.get $j) (local.get $last)))
            (local.set $v (v128.load (local.get $a)))
            (v128.store (local.get $o) (local.get $v))
            (v128.store offset=12 (local.get $o)
              (f32x4.mul (local.get $h) (f32x4.add (local.get $v) (v128.load offset=12 (local.get $a)))))
            (local.set $a (i32.add (local.get $a) (i32.const 12)))
            (local.set $o (i32.add (local.get $o) (i32.const 24)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $col)))
        ;; The row's last pixel is its own right neighbour: (v + v) / 2 = v.
        (local.set $v (v128.load (local.get $a)))
        (v128.store (local.get $o) (local.get $v))
        (v128.store offset=12 (local.get $o) (local.get $v))
        (local.set $a (i32.add (local.get $a) (i32.const 12)))
        (local.set $o (i32.add (local.get $o) (i32.const 24)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; Along y, plus the level: $sum ([2ph, w3/3, 3]) row 2r = half row r + wt·level, row 2r+1 =
  ;; (half row r + half row min(r+1, ph−1)) / 2 + wt·level. Each row is a pass of its own, in order,
  ;; so a row's last vector, which reaches into the next row, is overwritten by it.
  (func (export "up2y_add") (param $half i32) (param $sum i32) (param $level i32) (param $ph i32) (param $w3 i32) (param $wt f32)
    (local $r i32) (local $k i32) (local $row i32) (local $r0 i32) (local $r1 i32) (local $e i32) (local $d i32)
    (local $wv v128) (local $h v128)
    (local.set $wv (f32x4.splat (local.get $wt)))
    (local.set $h (f32x4.splat (f32.const 0.5)))
    (local.set $row (i32.shl (local.get $w3) (i32.const 2)))
    (block $rows
      (loop $each
        (br_if $rows (i32.ge_s (local.get $r) (local.get $ph)))
        (local.set $r0 (i32.add (local.get $half) (i32.mul (local.get $r) (local.get $row))))
        (local.set $r1 (select (local.get $r0) (i32.add (local.get $r0) (local.get $row))
          (i32.eq (i32.add (local.get $r) (i32.const 1)) (local.get $ph))))
        (local.set $e (i32.mul (i32.shl (local.get $r) (i32.const 1)) (local.get $row)))
        (local.set $k (i32.const 0))
        (block $evens
          (loop $even
            (br_if $evens (i32.ge_s (local.get $k) (local.get $row)))
            (local.set $d (i32.add (local.get $e) (local.get $k)))
            (v128.store (i32.add (local.get $sum) (local.get $d))
              (f32x4.add (v128.load (i32.add (local.get $r0) (local.get $k)))
                (f32x4.mul (local.get $wv) (v128.load (i32.add (local.get $level) (local.get $d))))))
            (local.set $k (i32.add (local.get $k) (i32.const 16)))
            (br $even)))
        (local.set $e (i32.add (local.get $e) (local.get $row)))
        (local.set $k (i32.const 0))
        (block $odds
          (loop $odd
            (br_if $odds (i32.ge_s (local.get $k) (local.get $row)))
            (local.set $d (i32.add (local.get $e) (local.get $k)))
            (v128.store (i32.add (local.get $sum) (local.get $d))
              (f32x4.add
                (f32x4.mul (local.get $h)
                  (f32x4.add (v128.load (i32.add (local.get $r0) (local.get $k))) (v128.load (i32.add (local.get $r1) (local.get $k)))))
                (f32x4.mul (local.get $wv) (v128.load (i32.add (local.get $level) (local.get $d))))))
            (local.set $k (i32.add (local.get $k) (i32.const 16)))
            (br $odd)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $each))))

  ;; up2y_add's transpose (without the level): half row r = sum row 2r + (sum row 2r+1 + sum row
  ;; 2r−1) / 2, where row −1 is absent and the last row takes row 2r+1 whole (it stood in for row
  ;; 2r+2 as well).
  (func (export "down2y") (param $sum i32) (param $half i32) (param $ph i32) (param $w3 i32)
    (local $r i32) (local $k i32) (local $row i32) (local $e i32) (local $b i32) (local $o i32)
    (local $wo v128) (local $wb v128)
    (local.set $row (i32.shl (local.get $w3) (i32.const 2)))
    (block $rows
      (loop $each
        (br_if $rows (i32.ge_s (local.get $r) (local.get $ph)))
        (local.set $e (i32.add (local.get $sum) (i32.mul (i32.shl (local.get $r) (i32.const 1)) (local.get $row))))
        ;; Row 0 reads its own row in place of row −1, with weight 0.
        (local.set $b (select (local.get $e) (i32.sub (local.get $e) (local.get $row)) (i32.eqz (local.get $r))))
        (local.set $wb (f32x4.splat (select (f32.const 0) (f32.const 0.5) (i32.eqz (local.get $r)))))
        (local.set $wo (f32x4.splat (select (f32.const 1) (f32.const 0.5)
          (i32.eq (i32.add (local.get $r) (i32.const 1)) (local.get $ph)))))
        (local.set $o (i32.add (local.get $half) (i32.mul (local.get $r) (local.get $row))))
        (local.set $k (i32.const 0))
        (block $ks
          (loop $kk
            (br_if $ks (i32.ge_s (local.get $k) (local.get $row)))
            (v128.store (i32.add (local.get $o) (local.get $k))
              (f32x4.add (v128.load (i32.add (local.get $e) (local.get $k)))
                (f32x4.add
                  (f32x4.mul (local.get $wo) (v128.load (i32.add (i32.add (local.get $e) (local.get $row)) (local.get $k))))
                  (f32x4.mul (local.get $wb) (v128.load (i32.add (local.get $b) (local.get $k)))))))
            (local.set $k (i32.add (local.get $k) (i32.const 16)))
            (br $kk)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $each))))

  ;; up2x's transpose: prev pixel j = half pixel 2j + (half 2j+1 + half 2j−1) / 2, where 2j−1 is
  ;; absent at j = 0 and the last pixel takes 2j+1 whole.
  (func (export "down2x") (param $half i32) (param $prev i32) (param $ph i32) (param $pw i32)
    (local $r i32) (local $j i32) (local $e i32) (local $o i32) (local $last i32)
    (local $wl v128) (local $wr v128) (local $h v128) (local $one v128)
    (local.set $h (f32x4.splat (f32.const 0.5)))
    (local.set $one (f32x4.splat (f32.const 1)))
    (local.set $e (local.get $half))
    (local.set $o (local.get $prev))
    (local.set $last (i32.sub (local.get $pw) (i32.const 1)))
    (block $rows
      (loop $row
        (br_if $rows (i32.ge_s (local.get $r) (local.get $ph)))
        (local.set $j (i32.const 0))
        (block $cols
          (loop $col
            (br_if $cols (i32.ge_s (local.get $j) (local.get $pw)))
            (local.set $wl (select (v128.const f32x4 0 0 0 0) (local.get $h) (i32.eqz (local.get $j))))
            (local.set $wr (select (local.get $one) (local.get $h) (i32.eq (local.get $j) (local.get $last))))
            ;; At j = 0 the left read is the pixel itself, with weight 0.
            (v128.store (local.get $o)
              (f32x4.add (v128.load (local.get $e))
                (f32x4.add
                  (f32x4.mul (local.get $wr) (v128.load offset=12 (local.get $e)))
                  (f32x4.mul (local.get $wl)
                    (v128.load (select (local.get $e) (i32.sub (local.get $e) (i32.const 12)) (i32.eqz (local.get $j))))))))
            (local.set $e (i32.add (local.get $e) (i32.const 24)))
            (local.set $o (i32.add (local.get $o) (i32.const 12)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $col)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; A 3×3 matrix per pixel: d pixel = c0·g₀ + c1·g₁ + c2·g₂ with c0, c1, c2 the vectors at $m (M's
  ;; columns for the colour map, its rows for the transpose), g's pixels $gs bytes apart (12, or 16
  ;; as unwarp_gradient writes them). Returns 1 when every value of g is finite (v·0 is NaN for NaN
  ;; and ±Infinity; a pixel's fourth lane is the next pixel's, masked off here and checked there).
  (func (export "colour") (param $g i32) (param $gs i32) (param $d i32) (param $pixels i32) (param $m i32) (result i32)
    (local $p i32) (local $v v128) (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $acc v128) (local $mask v128)
    (local.set $c0 (v128.load (local.get $m)))
    (local.set $c1 (v128.load offset=16 (local.get $m)))
    (local.set $c2 (v128.load offset=32 (local.get $m)))
    (local.set $mask (v128.const i32x4 -1 -1 -1 0))
    (block $done
      (loop $each
        (br_if $done (i32.ge_s (local.get $p) (local.get $pixels)))
        (local.set $v (v128.and (v128.load (local.get $g)) (local.get $mask)))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $v) (v128.const f32x4 0 0 0 0))))
        (v128.store (local.get $d)
          (f32x4.add
            (f32x4.add
              (f32x4.mul (local.get $c0) (i8x16.shuffle 0 1 2 3 0 1 2 3 0 1 2 3 0 1 2 3 (local.get $v) (local.get $v)))
              (f32x4.mul (local.get $c1) (i8x16.shuffle 4 5 6 7 4 5 6 7 4 5 6 7 4 5 6 7 (local.get $v) (local.get $v))))
            (f32x4.mul (local.get $c2) (i8x16.shuffle 8 9 10 11 8 9 10 11 8 9 10 11 8 9 10 11 (local.get $v) (local.get $v)))))
        (local.set $g (i32.add (local.get $g) (local.get $gs)))
        (local.set $d (i32.add (local.get $d) (i32.const 12)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $each)))
    (i32x4.all_true (f32x4.eq (local.get $acc) (v128.const f32x4 0 0 0 0))))
)
