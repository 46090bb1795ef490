using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Tensors;

public static partial class Ops
{
    private static void Require4d(Tensor x, string op)
    {
        RequireFloat(x, op, "x");
        if (x.Rank != 4) throw new ArgumentException($"{op}: input {ShapeUtil.Format(x.ShapeArr)} must be 4-D [N, C, H, W].");
    }

    /// <summary>
    /// 2-D convolution (cross-correlation, as PyTorch) of x [N, C, H, W] with weight [OutC, C/groups, KH, KW].
    /// Depthwise convolutions (groups == C) take a dedicated direct kernel; the rest go through im2col + GEMM.
    /// </summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias = null, (int H, int W)? stride = null,
        (int H, int W)? padding = null, (int H, int W)? dilation = null, int groups = 1)
    {
        Require4d(x, "conv2d");
        RequireFloat(weight, "conv2d", "weight");
        if (weight.Rank != 4) throw new ArgumentException($"conv2d: weight{weight.Describe()} must be 4-D [OutC, C/groups, KH, KW].");
        var (sh, sw) = stride ?? (1, 1);
        var (ph, pw) = padding ?? (0, 0);
        var (dh, dw) = dilation ?? (1, 1);
        int n = x.ShapeArr[0], c = x.ShapeArr[1], h = x.ShapeArr[2], w = x.ShapeArr[3];
        int oc = weight.ShapeArr[0];
        if (groups < 1 || c % groups != 0 || weight.ShapeArr[1] * groups != c)
            throw new ArgumentException($"conv2d: input {ShapeUtil.Format(x.ShapeArr)} with groups={groups} needs weight [OutC, {(groups > 0 ? c / groups : 0)}, KH, KW], got {ShapeUtil.Format(weight.ShapeArr)}.");
        if (bias is not null && bias.Numel != oc)
            throw new ArgumentException($"conv2d: bias {ShapeUtil.Format(bias.ShapeArr)} must have {oc} elements.");
        var s = new Conv2dShape(n, c, h, w, oc, weight.ShapeArr[2], weight.ShapeArr[3], sh, sw, ph, pw, dh, dw, groups);
        var xd = x.Dense<float>();
        var wd = weight.Dense<float>();
        var y = TensorBuffers.Rent(n * oc * s.OH * s.OW); // the kernels overwrite y and gx (tested with NaN-filled buffers)
        ConvKernels.Conv2dForward(s, xd, wd, bias?.Dense<float>(), y);
        Tensor[] inputs = bias is null ? [x, weight] : [x, weight, bias];
        int[] xShape = x.ShapeArr, wShape = weight.ShapeArr;
        return Tensor.Record(new Tensor(y, [n, oc, s.OH, s.OW]), "conv2d", inputs, g =>
        {
            var gd = g.Dense<float>();
            Tensor? gx = null, gw = null, gb = null;
            if (x.RequiresGrad)
            {
                var a = TensorBuffers.Rent(xd.Length);
                ConvKernels.Conv2dBackwardInput(s, gd, wd, a);
                gx = new Tensor(a, xShape);
            }
            if (weight.RequiresGrad)
            {
                var a = TensorBuffers.Rent(wd.Length);
                ConvKernels.Conv2dBackwardWeight(s, gd, xd, a, accumulate: false);
                gw = new Tensor(a, wShape);
            }
            if (bias is not null && bias.RequiresGrad)
            {
                var a = new float[oc];
                ConvKernels.Conv2dBackwardBias(s, gd, a, accumulate: false);
                gb = new Tensor(a, bias.ShapeArr);
            }
            return bias is null ? [gx, gw] : [gx, gw, gb];
        });
    }

    /// <summary>Max pooling over windows of x [N, C, H, W]; padding counts as -infinity.</summary>
    public static Tensor MaxPool2d(Tensor x, (int H, int W) kernel, (int H, int W)? stride = null, (int H, int W)? padding = null)
    {
        Require4d(x, "max_pool2d");
        var (kh, kw) = kernel;
        var (sh, sw) = stride ?? kernel;
        var (ph, pw) = padding ?? (0, 0);
        int n = x.ShapeArr[0], c = x.ShapeArr[1], h = x.ShapeArr[2], w = x.ShapeArr[3];
        var (oh, ow) = PoolKernels.Pool2dOutputSize(h, w, kh, kw, sh, sw, ph, pw);
        var xd = x.Dense<float>();
        var y = TensorBuffers.Rent(n * c * oh * ow);             // the kernel writes every element of y and arg
        // The argmax (int indices) lives in a pooled float buffer, recycled with the step's activations: a fresh int
        // array per call had its pages faulted in every time (1.3% of a ResNet-18 64 x 64 train step).
        var arg = PoolKernels.IntView(TensorBuffers.Rent(y.Length), y.Length);
        PoolKernels.MaxPool2dForward(n, c, h, w, kh, kw, sh, sw, ph, pw, xd, y, arg);
        int[] xShape = x.ShapeArr;
        return Tensor.Record(new Tensor(y, [n, c, oh, ow]), "max_pool2d", [x], g =>
        {
            var gx = TensorBuffers.Rent(xd.Length); // the kernel clears each plane
            PoolKernels.MaxPool2dBackward(n, c, h, w, kh, kw, sh, sw, ph, pw, g.Dense<float>(), arg, gx);
            return [new Tensor(gx, xShape)];
        });
    }

    /// <summary>Average pooling over windows of x [N, C, H, W].</summary>
    public static Tensor AvgPool2d(Tensor x, (int H, int W) kernel, (int H, int W)? stride = null, (int H, int W)? padding = null, bool countIncludePad = true)
    {
        Require4d(x, "avg_pool2d");
        var (kh, kw) = kernel;
        var (sh, sw) = stride ?? kernel;
        var (ph, pw) = padding ?? (0, 0);
        int n = x.ShapeArr[0], c = x.ShapeArr[1], h = x.ShapeArr[2], w = x.ShapeArr[3];
        var (oh, ow) = PoolKernels.Pool2dOutputSize(h, w, kh, kw, sh, sw, ph, pw);
        var xd = x.Dense<float>();
        var y = TensorBuffers.RentZeroed(n * c * oh * ow);
        PoolKernels.AvgPool2dForward(n, c, h, w, kh, kw, sh, sw, ph, pw, countIncludePad, xd, y);
        int[] xShape = x.ShapeArr;
        return Tensor.Record(new Tensor(y, [n, c, oh, ow]), "avg_pool2d", [x], g =>
        {
            var gx = TensorBuffers.RentZeroed(xd.Length);
            PoolKernels.AvgPool2dBackward(n, c, h, w, kh, kw, sh, sw, ph, pw, countIncludePad, g.Dense<float>(), gx);
            return [new Tensor(gx, xShape)];
        });
    }

    /// <summary>Mean over H and W of x [N, C, H, W]; returns [N, C] (keepDim: [N, C, 1, 1]).</summary>
    public static Tensor GlobalAvgPool2d(Tensor x, bool keepDim = false)
    {
        Require4d(x, "global_avg_pool2d");
        int n = x.ShapeArr[0], c = x.ShapeArr[1], h = x.ShapeArr[2], w = x.ShapeArr[3];
        var xd = x.Dense<float>();
        var y = new float[n * c];
        PoolKernels.GlobalAvgPoolForward(n, c, h, w, xd, y);
        int[] xShape = x.ShapeArr;
        int[] outShape = keepDim ? [n, c, 1, 1] : [n, c];
        return Tensor.Record(new Tensor(y, outShape), "global_avg_pool2d", [x], g =>
        {
            var gx = TensorBuffers.RentZeroed(xd.Length);
            PoolKernels.GlobalAvgPoolBackward(n, c, h, w, g.Dense<float>(), gx);
            return [new Tensor(gx, xShape)];
        });
    }

    /// <summary>Zero padding of x [N, C, H, W] by (left, right, top, bottom); asymmetric pads give Keras "same".</summary>
    public static Tensor ZeroPad2d(Tensor x, int left, int right, int top, int bottom)
    {
        Require4d(x, "zero_pad2d");
        int n = x.ShapeArr[0], c = x.ShapeArr[1], h = x.ShapeArr[2], w = x.ShapeArr[3];
        var (oh, ow) = PoolKernels.ZeroPad2dOutputSize(h, w, left, right, top, bottom);
        var xd = x.Dense<float>();
        var y = TensorBuffers.RentZeroed(n * c * oh * ow);
        PoolKernels.ZeroPad2dForward(n, c, h, w, left, right, top, bottom, xd, y);
        int[] xShape = x.ShapeArr;
        return Tensor.Record(new Tensor(y, [n, c, oh, ow]), "zero_pad2d", [x], g =>
        {
            var gx = TensorBuffers.RentZeroed(xd.Length);
            PoolKernels.ZeroPad2dBackward(n, c, h, w, left, right, top, bottom, g.Dense<float>(), gx);
            return [new Tensor(gx, xShape)];
        });
    }
}
