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
  ;; everywhere in the synthesis), added into $out, which the caller zeroes first.
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
    (local.set $row (i32.mul (local.get $w) (i32.const 12)))
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
            (local.set $c0 (i32.mul (local.get $x0) (i32.const 12)))
            (local.set $c1 (select (i32.const 0) (i32.add (local.get $c0) (i32.const 12))
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
)
