namespace MlNetFineTune.Tensors;

/// <summary>
/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64). Everything random in the
/// toolkit (initialisation, dropout, shuffling) takes one explicitly, so a seed reproduces a run.
/// </summary>
public sealed class Rng
{
    private Xoshiro256StarStar _state;
    private float? _spareNormal;

    /// <summary>Creates a generator from <paramref name="seed"/>.</summary>
    public Rng(ulong seed)
    {
        ulong x = seed;
        _state.S0 = SplitMix(ref x); _state.S1 = SplitMix(ref x); _state.S2 = SplitMix(ref x); _state.S3 = SplitMix(ref x);
    }

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Next 64 random bits.</summary>
    public ulong NextUInt64() => _state.Next();

    /// <summary>The generator's state, for kernels that step a copy in registers (the sequence is unchanged).</summary>
    internal Xoshiro256StarStar State
    {
        get => _state;
        set => _state = value;
    }

    /// <summary>Uniform in [0, 1) with 24 bits of precision.</summary>
    public float NextFloat() => (NextUInt64() >> 40) * (1f / (1 << 24));

    /// <summary>Uniform in [0, 1) with 53 bits of precision.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, <paramref name="maxExclusive"/>).</summary>
    public int NextInt(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxExclusive, 1);
        return (int)((NextUInt64() >> 33) % (ulong)maxExclusive);
    }

    /// <summary>Standard normal sample (Box-Muller).</summary>
    public float NextNormal()
    {
        if (_spareNormal is float spare) { _spareNormal = null; return spare; }
        double u1 = 1.0 - NextDouble(), u2 = NextDouble();
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        _spareNormal = (float)(r * Math.Sin(2 * Math.PI * u2));
        return (float)(r * Math.Cos(2 * Math.PI * u2));
    }

    /// <summary>Shuffles <paramref name="items"/> in place (Fisher-Yates).</summary>
    public void Shuffle<T>(T[] items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>A new independent generator derived from this one (for per-worker streams).</summary>
    public Rng Fork() => new(NextUInt64());
}

/// <summary>The state and step of xoshiro256**: one definition for <see cref="Rng"/> and for kernels that step a local copy.</summary>
internal struct Xoshiro256StarStar
{
    public ulong S0, S1, S2, S3;

    /// <summary>Next 64 random bits.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public ulong Next()
    {
        ulong result = ulong.RotateLeft(S1 * 5, 7) * 9;
        ulong t = S1 << 17;
        S2 ^= S0; S3 ^= S1; S1 ^= S2; S0 ^= S3;
        S2 ^= t;
        S3 = ulong.RotateLeft(S3, 45);
        return result;
    }
}
