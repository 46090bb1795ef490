using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// The B operand of a GEMM packed ahead of time, in exactly the NR-column micro-panels the packed driver
/// would build block by block (<see cref="GemmPacked"/>), every (n block, k block) in its own place. A product
/// that reuses one B many times with few rows of A (a linear layer's weight at inference, where packing the
/// weight costs about as much as the multiply at 32 rows) then skips packing; the result is bitwise the same,
/// because the kernel reads the same panels in the same order.
/// </summary>
internal sealed unsafe class PackedMatrix
{
    private readonly float[] _data;    // pinned: the kernels read it through pointers
    private readonly nint[] _offsets;  // per (jb, kb), in floats from the aligned start
    private readonly int _kBlocks;

    public GemmBlocking Blocking { get; }
    public int N { get; }
    public int K { get; }

    /// <summary>Floats held (the packed panels, zero-padded to whole NR panels).</summary>
    public long Length { get; }

    private PackedMatrix(GemmBlocking bk, int n, int k)
    {
        Blocking = bk; N = n; K = k;
        var (kBlocks, _, nPanels, nBlocks, _) = GemmPacked.Blocks(bk, n, k);
        _kBlocks = kBlocks;
        _offsets = new nint[nBlocks * kBlocks];
        long at = 0;
        for (int jb = 0; jb < nBlocks; jb++)
        {
            var (jp0, jp1) = GemmPacked.NBlock(nPanels, nBlocks, jb);
            for (int kb = 0; kb < kBlocks; kb++)
            {
                var (p0, p1) = GemmPacked.KBlock(k, kBlocks, kb);
                _offsets[jb * kBlocks + kb] = (nint)at;
                at += ((long)(jp1 - jp0) * bk.NR * (p1 - p0) + 15) & ~15L;   // 64-byte aligned blocks
            }
        }
        Length = at;
        _data = GC.AllocateUninitializedArray<float>(checked((int)(at + 16)), pinned: true);
    }

    /// <summary>True when this holds a k x n operand packed for blocking <paramref name="bk"/>.</summary>
    public bool Fits(in GemmBlocking bk, int n, int k) => Blocking == bk && N == n && K == k;

    private float* Start
    {
        get
        {
            nint addr = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_data));
            return (float*)((addr + 63) & ~(nint)63);
        }
    }

    /// <summary>The packed block of n block <paramref name="jb"/> and k block <paramref name="kb"/>.</summary>
    public float* Block(int jb, int kb) => Start + _offsets[jb * _kBlocks + kb];

    /// <summary>Packs op(B) (k x n; B stored n x k when <paramref name="transB"/>, row stride ldb) for <paramref name="level"/>.</summary>
    public static PackedMatrix PackB(SimdLevel level, bool transB, int n, int k, float* b, nint ldb)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        var bk = GemmBlocking.For(level);
        var pm = new PackedMatrix(bk, n, k);
        var (kBlocks, _, nPanels, nBlocks, _) = GemmPacked.Blocks(bk, n, k);
        for (int jb = 0; jb < nBlocks; jb++)
        {
            var (jp0, jp1) = GemmPacked.NBlock(nPanels, nBlocks, jb);
            int j0 = jp0 * bk.NR, nc = Math.Min(n, jp1 * bk.NR) - j0;
            for (int kb = 0; kb < kBlocks; kb++)
            {
                var (p0, p1) = GemmPacked.KBlock(k, kBlocks, kb);
                GemmPacked.PackB(bk, transB, b, ldb, p0, p1 - p0, j0, nc, pm.Block(jb, kb));
            }
        }
        return pm;
    }
}
